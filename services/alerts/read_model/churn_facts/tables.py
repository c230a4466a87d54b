"""The tables: ``churn_facts`` (one row per event the churn rules read, keyed by the
event's id, under the customer it is about now), ``churn_customers`` (every customer of
the tenant, ranked even with no fact, its owner and its last assessment) and
``churn_rules`` (the tenant's rules in force and their stream's version)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
)

from libs.platform.db import JsonDocument, UtcDateTime

metadata = MetaData()


facts = Table(
    "churn_facts",
    metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("event_id", String(64), primary_key=True),
    Column("customer_id", String(64), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Column("ref", String(64), nullable=False),
    Column("value", Float, nullable=False),
    Column("until", Date, nullable=True),
    Column("flag", Boolean, nullable=False),
    Index("ix_churn_facts_customer", "tenant_id", "customer_id", "at"),
)


customers = Table(
    "churn_customers",
    metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("customer_id", String(64), primary_key=True),
    Column("owner_id", String(64), nullable=True),
    # None: known from another service's event before its registration arrived.
    Column("registered_at", UtcDateTime, nullable=True),
    Column("merged_into", String(64), nullable=True),
    # The level last assessed by the projector, and the version of the customer's
    # alerts stream (its risk events).
    Column("level", String(8), nullable=False),
    Column("score", Integer, nullable=False),
    Column("version", Integer, nullable=False),
    # The alert opened by the last rise to high, until the customer leaves high.
    Column("open_alert_id", String(36), nullable=True),
    # The last assessment, kept so that the ranking is read, not computed (decision
    # 0093): its reasons (None: not assessed yet), when it was made, the last order
    # then (NEVER_BOUGHT for none: the page order holds no NULL), and when the
    # customer is due to be assessed again as time alone passes (None: now).
    Column("reasons", JsonDocument, nullable=True),
    Column("assessed_at", UtcDateTime, nullable=True),
    Column("last_order_at", UtcDateTime, nullable=True),
    Column("review_at", UtcDateTime, nullable=True),
    # What the customer is worth as last assessed (decision 0101); revenue at risk 0
    # where it is unknown, so the page order by it holds no NULL.
    Column("no_purchase_probability", Float, nullable=True),
    Column("predicted_value", BigInteger, nullable=True),
    Column("revenue_at_risk", BigInteger, nullable=False, server_default="0"),
    # The lapse index as last assessed, for ties within a score (``lapse_rank``).
    Column("lapse_rank", BigInteger, nullable=False, server_default="0"),
    Index("ix_churn_customers_owner", "tenant_id", "owner_id"),
    # The ranking's pages, read backwards (migration 0009).
    Index("ix_churn_customers_rank", "tenant_id", "score", "lapse_rank", "customer_id"),
    Index(
        "ix_churn_customers_value",
        "tenant_id",
        "revenue_at_risk",
        "score",
        "lapse_rank",
        "customer_id",
    ),
    Index("ix_churn_customers_review", "review_at"),
)


NEVER_BOUGHT = datetime(9999, 12, 31, tzinfo=UTC)

# The lapse index kept as a positive whole number (a page cursor carries it exactly):
# millionths above a floor no index reaches; 0 for a customer who never bought.
LAPSE_FLOOR = 10**12


def lapse_rank(index: float | None) -> int:
    if index is None:
        return 0
    return max(1, LAPSE_FLOOR + round(index * 1_000_000))


def lapse_of(rank: int) -> float | None:
    """The lapse index a ``lapse_rank`` keeps (to the millionth)."""
    return None if rank == 0 else (rank - LAPSE_FLOOR) / 1_000_000


rules_table = Table(
    "churn_rules",
    metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("rules", JsonDocument, nullable=False),
    Column("version", Integer, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)
