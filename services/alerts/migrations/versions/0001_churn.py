"""The alerts database's first revision: the event store and outbox (with the relay's
record of what it published), the projection runtime's bookkeeping (for the churn
projector), the per-customer churn facts, the customers with their last assessed
level and open alert, the alerts with their lifecycle, the reminders fired, and the
tenants' churn rules.

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


def upgrade() -> None:
    create_event_store_v1(op)
    create_publication_record_v2(op)
    create_projection_runtime_v1(op)
    add_checkpoint_event_id_v2(op)
    op.create_table(
        "churn_facts",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("at", UtcDateTime, nullable=False),
        sa.Column("ref", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("until", sa.Date(), nullable=True),
        sa.Column("flag", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "event_id"),
    )
    op.create_index(
        "ix_churn_facts_customer", "churn_facts", ["tenant_id", "customer_id", "at"], unique=False
    )
    op.create_table(
        "churn_customers",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("owner_id", sa.String(length=64), nullable=True),
        sa.Column("registered_at", UtcDateTime, nullable=True),
        sa.Column("merged_into", sa.String(length=64), nullable=True),
        sa.Column("level", sa.String(length=8), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("open_alert_id", sa.String(length=36), nullable=True),
        sa.PrimaryKeyConstraint("tenant_id", "customer_id"),
    )
    op.create_index(
        "ix_churn_customers_owner", "churn_customers", ["tenant_id", "owner_id"], unique=False
    )
    op.create_table(
        "churn_alerts",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("alert_id", sa.String(length=36), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("owner_id", sa.String(length=64), nullable=True),
        sa.Column("level", sa.String(length=8), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column(
            "reasons",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("opened_at", UtcDateTime, nullable=False),
        sa.Column("closed_at", UtcDateTime, nullable=True),
        sa.Column("closed_by", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "alert_id"),
    )
    op.create_index(
        "ix_churn_alerts_status",
        "churn_alerts",
        ["tenant_id", "status", "opened_at"],
        unique=False,
    )
    op.create_table(
        "churn_reminders",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("reminder_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("assignee_id", sa.String(length=64), nullable=True),
        sa.Column("subject_id", sa.String(length=64), nullable=True),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column("sentence", sa.String(length=500), nullable=False),
        sa.Column("fired_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "reminder_id"),
    )
    op.create_index(
        "ix_churn_reminders_assignee",
        "churn_reminders",
        ["tenant_id", "assignee_id", "due_on"],
        unique=False,
    )
    op.create_table(
        "churn_rules",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column(
            "rules",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id"),
    )


def downgrade() -> None:
    raise NotImplementedError("the first revision is not undone: restore a backup instead")
