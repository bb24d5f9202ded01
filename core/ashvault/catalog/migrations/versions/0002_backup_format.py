"""Each backup records the format its data is in, so restore, verify and delete never guess it.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    with op.batch_alter_table("backups") as batch:
        batch.add_column(sa.Column("format", sa.String(64), nullable=False, server_default="chunked/1"))
    # Before this column the ceph driver told its RBD-to-RBD backups apart by a JSON object in service_metadata.
    op.execute("UPDATE backups SET format = 'ceph-rbd/1' WHERE service = 'ceph' AND service_metadata LIKE '{%'")


def downgrade() -> None:
    with op.batch_alter_table("backups") as batch:
        batch.drop_column("format")
