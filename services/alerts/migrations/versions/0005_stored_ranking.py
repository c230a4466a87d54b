"""The churn ranking kept, not computed per request (docs/decisions/0093): each
customer's last assessment (reasons with their events, when it was made, its last
order for ranking ties: 9999-12-31 for one who never bought, so that no NULL sits in
the page order) and when it is due to be assessed again. Points earned no longer make
a loyalty fact; the ones kept cannot be told from redemptions' (both name an id), so
both go and check-ins stay: redemptions count again from the next one.

Revision ID: 0005
Revises: 0004
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from libs.platform.db import UtcDateTime

NEVER_BOUGHT = datetime(9999, 12, 31, tzinfo=UTC)

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("churn_customers") as table:
        table.add_column(
            sa.Column(
                "reasons", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=True
            )
        )
        table.add_column(sa.Column("assessed_at", UtcDateTime, nullable=True))
        table.add_column(sa.Column("last_order_at", UtcDateTime, nullable=True))
        # None: due now (never assessed since this revision, or the rules changed).
        table.add_column(sa.Column("review_at", UtcDateTime, nullable=True))
    facts = sa.table("churn_facts", sa.column("kind", sa.String), sa.column("ref", sa.String))
    op.execute(facts.delete().where(facts.c.kind == "loyalty_activity", facts.c.ref != ""))
    customers = sa.table("churn_customers", sa.column("last_order_at", UtcDateTime))
    op.execute(customers.update().values(last_order_at=NEVER_BOUGHT))
    # The ranking's page order: score (read backwards), then the longest without an
    # order (PostgreSQL sorts within a score incrementally).
    op.create_index(
        "ix_churn_customers_rank",
        "churn_customers",
        ["tenant_id", "score", "last_order_at", "customer_id"],
    )
    op.create_index("ix_churn_customers_review", "churn_customers", ["review_at"])


def downgrade() -> None:
    op.drop_index("ix_churn_customers_review", table_name="churn_customers")
    op.drop_index("ix_churn_customers_rank", table_name="churn_customers")
    with op.batch_alter_table("churn_customers") as table:
        table.drop_column("review_at")
        table.drop_column("last_order_at")
        table.drop_column("assessed_at")
        table.drop_column("reasons")
