"""Each chunked backup records its manifest's content hash, binding the manifest to the backup.

Nullable: backups made before it have none and are checked on their id, volume and size only.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    with op.batch_alter_table("backups") as batch:
        batch.add_column(sa.Column("manifest_hash", sa.String(64)))


def downgrade() -> None:
    with op.batch_alter_table("backups") as batch:
        batch.drop_column("manifest_hash")
