"""The follow-up tasks the alerts service follows for overdue reminders (from the
pipeline's task events): open or completed, due when, assigned to whom.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

from libs.platform.db import UtcDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "churn_tasks",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("task_id", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("assignee_id", sa.String(length=64), nullable=False),
        sa.Column("due_at", UtcDateTime, nullable=False),
        sa.Column("completed", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "task_id"),
    )
    op.create_index(
        "ix_churn_tasks_customer",
        "churn_tasks",
        ["tenant_id", "customer_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_churn_tasks_customer", table_name="churn_tasks")
    op.drop_table("churn_tasks")
