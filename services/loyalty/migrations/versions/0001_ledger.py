"""The loyalty database's first revision: the event store and outbox (with the relay's
record of what it published), the projection runtime's bookkeeping (for earning from
other services' events), and the read model of accounts, ledger lines, members,
monthly figures and birthdays.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from libs.events.schema import (
    add_checkpoint_event_id_v2,
    create_event_store_v1,
    create_projection_runtime_v1,
    create_publication_record_v2,
)
from libs.platform.db import BigId, JsonDocument, UtcDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_event_store_v1(op)
    create_publication_record_v2(op)
    create_projection_runtime_v1(op)
    add_checkpoint_event_id_v2(op)
    op.create_table(
        "loyalty_accounts",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("balance", BigId, nullable=False),
        sa.Column("owed", BigId, nullable=False),
        sa.Column("tier", sa.String(length=64), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("next_due_at", UtcDateTime, nullable=True),
        sa.Column("merged_into", sa.String(length=64), nullable=True),
        sa.Column("updated_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "customer_id"),
    )
    op.create_index("ix_loyalty_accounts_due", "loyalty_accounts", ["next_due_at"], unique=False)
    op.create_table(
        "loyalty_birthdays",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("month", sa.Integer(), nullable=False),
        sa.Column("day", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "customer_id"),
    )
    op.create_index("ix_loyalty_birthdays_day", "loyalty_birthdays", ["month", "day"], unique=False)
    op.create_table(
        "loyalty_lines",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(length=200), nullable=False),
        sa.Column("points", BigId, nullable=False),
        sa.Column("balance_after", BigId, nullable=False),
        sa.Column("source_event_id", sa.String(length=64), nullable=True),
        sa.Column("data", JsonDocument, nullable=False),
        sa.Column("recorded_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "customer_id", "version"),
    )
    op.create_index(
        "uq_loyalty_lines_source",
        "loyalty_lines",
        ["tenant_id", "source_event_id"],
        unique=True,
        postgresql_where=sa.text("source_event_id IS NOT NULL"),
        sqlite_where=sa.text("source_event_id IS NOT NULL"),
    )
    op.create_table(
        "loyalty_members",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("registered_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "customer_id"),
    )
    op.create_table(
        "loyalty_monthly",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("issued", BigId, nullable=False),
        sa.Column("redeemed", BigId, nullable=False),
        sa.Column("expired", BigId, nullable=False),
        sa.Column("clawed_back", BigId, nullable=False),
        sa.Column("adjusted", BigId, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "month"),
    )


def downgrade() -> None:
    raise NotImplementedError("the first revision is not undone: restore a backup instead")
