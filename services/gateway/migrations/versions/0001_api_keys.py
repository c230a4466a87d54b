"""The API keys, as they were created at start-up before migrations existed.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from libs.platform.db import JsonDocument, UtcDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("tenant_id", sa.String, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("roles", JsonDocument, nullable=False),
        sa.Column("secret_sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("visible_prefix", sa.String(12), nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("created_by", sa.String, nullable=False),
        sa.Column("last_used_at", UtcDateTime),
        sa.Column("revoked_at", UtcDateTime),
        sa.Column("revoked_by", sa.String),
    )
    op.create_index("ix_api_keys_tenant", "api_keys", ["tenant_id", "created_at"])


def downgrade() -> None:
    raise NotImplementedError("the first revision is not undone: restore a backup instead")
