"""Backups can be protected from deletion and pruning, and carry properties (key=value).

Properties are a JSON object in one text column rather than a table of their own: a backup has a handful of them,
they are always read with the backup and never searched by key, so a join on every listing would buy nothing.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    with op.batch_alter_table("backups") as batch:
        batch.add_column(sa.Column("protected", sa.Boolean, nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("properties", sa.Text, nullable=False, server_default="{}"))


def downgrade() -> None:
    with op.batch_alter_table("backups") as batch:
        batch.drop_column("properties")
        batch.drop_column("protected")
