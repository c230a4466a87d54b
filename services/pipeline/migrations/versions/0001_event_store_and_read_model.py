"""The pipeline database's first revision: the event store and outbox, the projection
runtime's bookkeeping (the customers it knows, from contacts' topic), and the read
model of orders, deals, leads, tasks and contracts.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from libs.events.schema import create_event_store_v1, create_projection_runtime_v1
from libs.platform.db import UtcDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_event_store_v1(op)
    create_projection_runtime_v1(op)
    op.create_table(
        "pipeline_assignment_turns",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("rule_index", sa.Integer(), nullable=False),
        sa.Column("last_owner_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "rule_index"),
    )
    op.create_table(
        "pipeline_contracts",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("contract_id", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("starts_on", sa.Date(), nullable=False),
        sa.Column("ends_on", sa.Date(), nullable=False),
        sa.Column("auto_renew", sa.Boolean(), nullable=False),
        sa.Column("terminated_on", sa.Date(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "contract_id"),
    )
    op.create_index(
        "ix_pipeline_contracts_customer",
        "pipeline_contracts",
        ["tenant_id", "customer_id"],
        unique=False,
    )
    op.create_table(
        "pipeline_deal_stays",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("deal_id", sa.String(length=64), nullable=False),
        sa.Column("entered_version", sa.Integer(), nullable=False),
        sa.Column("stage", sa.String(length=64), nullable=False),
        sa.Column("owner_id", sa.String(length=64), nullable=True),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("entered_at", UtcDateTime, nullable=False),
        sa.Column("left_at", UtcDateTime, nullable=True),
        sa.PrimaryKeyConstraint("tenant_id", "deal_id", "entered_version"),
    )
    op.create_index(
        "ix_pipeline_deal_stays_entered",
        "pipeline_deal_stays",
        ["tenant_id", "entered_at"],
        unique=False,
    )
    op.create_table(
        "pipeline_deals",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("deal_id", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("owner_id", sa.String(length=64), nullable=True),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("stage", sa.String(length=64), nullable=False),
        sa.Column("probability", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("opened_at", UtcDateTime, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "deal_id"),
    )
    op.create_index(
        "ix_pipeline_deals_customer", "pipeline_deals", ["tenant_id", "customer_id"], unique=False
    )
    op.create_table(
        "pipeline_leads",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("lead_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("company", sa.String(length=200), nullable=True),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("phone", sa.String(length=40), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("territory", sa.String(length=64), nullable=True),
        sa.Column("industry", sa.String(length=64), nullable=True),
        sa.Column("owner_id", sa.String(length=64), nullable=True),
        sa.Column("assigned_by", sa.String(length=100), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=True),
        sa.Column("captured_at", UtcDateTime, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "lead_id"),
    )
    op.create_index(
        "ix_pipeline_leads_customer", "pipeline_leads", ["tenant_id", "customer_id"], unique=False
    )
    op.create_index(
        "ix_pipeline_leads_owner",
        "pipeline_leads",
        ["tenant_id", "owner_id", "status"],
        unique=False,
    )
    op.create_table(
        "pipeline_order_external_ids",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("external_id", sa.String(length=64), nullable=False),
        sa.Column("order_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "external_id"),
    )
    op.create_table(
        "pipeline_orders",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("order_id", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("external_id", sa.String(length=64), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.Column("refunded", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("placed_at", UtcDateTime, nullable=False),
        sa.Column("line_count", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "order_id"),
    )
    op.create_index(
        "ix_pipeline_orders_customer",
        "pipeline_orders",
        ["tenant_id", "customer_id", "placed_at"],
        unique=False,
    )
    op.create_table(
        "pipeline_tasks",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("task_id", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=True),
        sa.Column("lead_id", sa.String(length=64), nullable=True),
        sa.Column("deal_id", sa.String(length=64), nullable=True),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("due_at", UtcDateTime, nullable=False),
        sa.Column("assignee_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "task_id"),
    )
    op.create_index(
        "ix_pipeline_tasks_assignee",
        "pipeline_tasks",
        ["tenant_id", "assignee_id", "due_at"],
        unique=False,
    )


def downgrade() -> None:
    raise NotImplementedError("the first revision is not undone: restore a backup instead")
