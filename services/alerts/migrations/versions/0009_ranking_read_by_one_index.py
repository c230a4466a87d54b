"""The kept ranking's pages read by one index from the position on: every key of
either order descending, ties of the kept lapse index broken by the customer id
(docs/decisions/0106).

Revision ID: 0009
Revises: 0008
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_churn_customers_rank", table_name="churn_customers")
    op.drop_index("ix_churn_customers_value", table_name="churn_customers")
    # Ascending indexes read backwards: (a, b, c) < (x, y, z) is a range of them.
    op.create_index(
        "ix_churn_customers_rank",
        "churn_customers",
        ["tenant_id", "score", "lapse_rank", "customer_id"],
    )
    op.create_index(
        "ix_churn_customers_value",
        "churn_customers",
        ["tenant_id", "revenue_at_risk", "score", "lapse_rank", "customer_id"],
    )


def downgrade() -> None:
    op.drop_index("ix_churn_customers_value", table_name="churn_customers")
    op.drop_index("ix_churn_customers_rank", table_name="churn_customers")
    op.create_index(
        "ix_churn_customers_rank",
        "churn_customers",
        ["tenant_id", "score", "lapse_rank", "last_order_at", "customer_id"],
    )
    op.create_index(
        "ix_churn_customers_value",
        "churn_customers",
        ["tenant_id", "revenue_at_risk", "score", "lapse_rank", "last_order_at", "customer_id"],
    )
