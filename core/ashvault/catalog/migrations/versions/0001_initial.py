"""Volumes and backups.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "volumes",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(255), index=True),
        sa.Column("description", sa.Text),
        sa.Column("location", sa.Text, nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("managed", sa.Boolean, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "backups",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("volume_id", sa.String(36), nullable=False, index=True),
        sa.Column("name", sa.String(255), index=True),
        sa.Column("description", sa.Text),
        sa.Column("container", sa.String(255)),
        sa.Column("parent_id", sa.String(36), index=True),
        sa.Column("status", sa.String(32), nullable=False, index=True),
        sa.Column("fail_reason", sa.Text),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("service", sa.String(255)),
        sa.Column("service_metadata", sa.Text),
        sa.Column("object_count", sa.Integer, nullable=False),
        sa.Column("stored_bytes", sa.BigInteger, nullable=False),
        sa.Column("read_bytes", sa.BigInteger, nullable=False),
        sa.Column("host", sa.String(255)),
        sa.Column("restore_volume_id", sa.String(36)),
        sa.Column("availability_zone", sa.String(255)),
        sa.Column("data_timestamp", sa.DateTime(timezone=True)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True)),
        sa.Column("deleted", sa.Boolean, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("backups")
    op.drop_table("volumes")
