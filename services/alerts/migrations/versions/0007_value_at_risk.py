"""Value at risk (docs/decisions/0101): each kept assessment, and each row of a past
ranking, carries the probability of no purchase in the next 90 days, the predicted
value and the revenue at risk; the ranking can be paged by revenue at risk (0 where it
is unknown, so no NULL sits in the page order). Within a score the kept ranking is
ordered by the lapse index, as a ranking scored on a request is (``lapse_rank``).

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def _worth(revenue_nullable: bool) -> list[sa.Column[object]]:
    return [
        sa.Column("no_purchase_probability", sa.Float(), nullable=True),
        sa.Column("predicted_value", sa.BigInteger(), nullable=True),
        sa.Column(
            "revenue_at_risk",
            sa.BigInteger(),
            nullable=revenue_nullable,
            server_default=None if revenue_nullable else "0",
        ),
    ]


def upgrade() -> None:
    op.drop_index("ix_churn_customers_rank", table_name="churn_customers")
    with op.batch_alter_table("churn_customers") as table:
        for column in _worth(revenue_nullable=False):
            table.add_column(column)
        table.add_column(
            sa.Column("lapse_rank", sa.BigInteger(), nullable=False, server_default="0")
        )
    with op.batch_alter_table("churn_ranking_rows") as table:
        for column in _worth(revenue_nullable=True):
            table.add_column(column)
    # Every customer assessed again at the next sweep, so that each carries its worth.
    op.execute(sa.text("UPDATE churn_customers SET review_at = NULL"))
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


def downgrade() -> None:
    op.drop_index("ix_churn_customers_value", table_name="churn_customers")
    op.drop_index("ix_churn_customers_rank", table_name="churn_customers")
    with op.batch_alter_table("churn_customers") as table:
        table.drop_column("lapse_rank")
    for name in ("churn_ranking_rows", "churn_customers"):
        with op.batch_alter_table(name) as table:
            for column in ("revenue_at_risk", "predicted_value", "no_purchase_probability"):
                table.drop_column(column)
    op.create_index(
        "ix_churn_customers_rank",
        "churn_customers",
        ["tenant_id", "score", "last_order_at", "customer_id"],
    )
