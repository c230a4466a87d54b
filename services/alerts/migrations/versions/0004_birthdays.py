"""Customers' birthdays for the birthday reminder: month and day only, deleted on
erasure (docs/decisions/0057).

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "churn_birthdays",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("month", sa.Integer(), nullable=False),
        sa.Column("day", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "customer_id"),
    )


def downgrade() -> None:
    op.drop_table("churn_birthdays")
