"""The analytics database's first revision: the event store and outbox (with the
relay's record of what it published), the projection runtime's bookkeeping, the
tenants' analytics settings, the saved segments, each segment's members as last
announced, and its member count history.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from libs.events.schema import (
    add_checkpoint_event_id_v2,
    create_event_store_v1,
    create_projection_runtime_v1,
    create_publication_record_v2,
)
from libs.platform.db import UtcDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    create_event_store_v1(op)
    create_publication_record_v2(op)
    create_projection_runtime_v1(op)
    add_checkpoint_event_id_v2(op)
    op.create_table(
        "analytics_settings",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("settings", JSON, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id"),
    )
    op.create_table(
        "analytics_segments",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("filter", JSON, nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
        sa.Column("updated_by", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("tenant_id", "name"),
    )
    op.create_table(
        "analytics_segment_members",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("segment", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("since", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "segment", "customer_id"),
    )
    op.create_table(
        "analytics_segment_counts",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("segment", sa.String(length=64), nullable=False),
        sa.Column("at", UtcDateTime, nullable=False),
        sa.Column("members", sa.Integer(), nullable=False),
        sa.Column("entered", sa.Integer(), nullable=False),
        sa.Column("left", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "segment", "at"),
    )
    op.create_index(
        "ix_analytics_segment_counts_at",
        "analytics_segment_counts",
        ["tenant_id", "segment", "at"],
        unique=False,
    )


def downgrade() -> None:
    raise NotImplementedError("the first revision is not undone: restore a backup instead")
