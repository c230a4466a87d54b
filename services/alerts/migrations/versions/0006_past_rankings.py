"""Rankings as of a past time, as jobs (docs/decisions/0093): the jobs, and each done
job's ranked customers by position.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from libs.platform.db import UtcDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "churn_rankings",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("ranking_id", sa.String(length=36), nullable=False),
        sa.Column("idempotency_key", sa.String(length=64), nullable=True),
        sa.Column("as_of", UtcDateTime, nullable=False),
        sa.Column("owner_id", sa.String(length=64), nullable=True),
        sa.Column("horizon_days", sa.Integer(), nullable=True),
        sa.Column(
            "report", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=True
        ),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("ranked", sa.Integer(), nullable=True),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.Column("requested_by", sa.String(length=128), nullable=False),
        sa.Column("requested_at", UtcDateTime, nullable=False),
        sa.Column("finished_at", UtcDateTime, nullable=True),
        sa.PrimaryKeyConstraint("tenant_id", "ranking_id"),
    )
    op.create_index(
        "ix_churn_rankings_key", "churn_rankings", ["tenant_id", "idempotency_key"], unique=True
    )
    op.create_index("ix_churn_rankings_status", "churn_rankings", ["status"])
    op.create_table(
        "churn_ranking_rows",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("ranking_id", sa.String(length=36), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("owner_id", sa.String(length=64), nullable=True),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("level", sa.String(length=8), nullable=False),
        sa.Column(
            "reasons", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False
        ),
        sa.PrimaryKeyConstraint("tenant_id", "ranking_id", "position"),
    )


def downgrade() -> None:
    op.drop_table("churn_ranking_rows")
    op.drop_index("ix_churn_rankings_status", table_name="churn_rankings")
    op.drop_index("ix_churn_rankings_key", table_name="churn_rankings")
    op.drop_table("churn_rankings")
