"""Assessments kept (decision 0093): a customer's level, score and reasons as last
assessed, and when time alone can change them, so the sweep knows whom to review."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from libs.events.catalog.alerts import RiskLevel
from libs.platform.db import JsonDocument, UtcDateTime
from services.alerts.domain.value import Worth
from services.alerts.read_model.churn_facts.tables import NEVER_BOUGHT, customers, lapse_rank


async def assessed(
    conn: AsyncConnection,
    tenant_id: str,
    customer_id: str,
    level: RiskLevel,
    score: int,
    version: int,
    open_alert_id: str | None,
) -> None:
    await conn.execute(
        update(customers)
        .where(customers.c.tenant_id == tenant_id, customers.c.customer_id == customer_id)
        .values(level=level, score=score, version=version, open_alert_id=open_alert_id)
    )


@dataclass(frozen=True, slots=True)
class Assessment:
    """A customer's assessment as kept: what the ranking pages and the sweep read."""

    customer_id: str
    level: RiskLevel
    score: int
    version: int
    open_alert_id: str | None
    reasons: list[dict[str, Any]]
    assessed_at: datetime
    last_order_at: datetime | None
    review_at: datetime
    worth: Worth
    lapse: float | None = None


async def keep_assessments(
    conn: AsyncConnection, tenant_id: str, assessments: Sequence[Assessment]
) -> None:
    """The customers' new assessments, one statement for all."""
    if not assessments:
        return
    await conn.execute(
        update(customers)
        .where(
            customers.c.tenant_id == bindparam("t_tenant"),
            customers.c.customer_id == bindparam("t_customer"),
        )
        .values(
            level=bindparam("t_level"),
            score=bindparam("t_score"),
            version=bindparam("t_version"),
            open_alert_id=bindparam("t_open_alert"),
            reasons=bindparam("t_reasons", type_=JsonDocument),
            assessed_at=bindparam("t_assessed_at", type_=UtcDateTime),
            last_order_at=bindparam("t_last_order_at", type_=UtcDateTime),
            review_at=bindparam("t_review_at", type_=UtcDateTime),
            no_purchase_probability=bindparam("t_probability"),
            predicted_value=bindparam("t_predicted"),
            revenue_at_risk=bindparam("t_at_risk"),
            lapse_rank=bindparam("t_lapse"),
        ),
        [
            {
                "t_tenant": tenant_id,
                "t_customer": a.customer_id,
                "t_level": a.level,
                "t_score": a.score,
                "t_version": a.version,
                "t_open_alert": a.open_alert_id,
                "t_reasons": a.reasons,
                "t_assessed_at": a.assessed_at,
                "t_last_order_at": a.last_order_at or NEVER_BOUGHT,
                "t_review_at": a.review_at,
                "t_probability": a.worth.no_purchase_probability,
                "t_predicted": a.worth.predicted_value,
                "t_at_risk": a.worth.revenue_at_risk or 0,
                "t_lapse": lapse_rank(a.lapse),
            }
            for a in assessments
        ],
    )


async def review_everyone(conn: AsyncConnection, tenant_id: str) -> None:
    """Every customer of the tenant due for assessment now (its rules changed)."""
    await conn.execute(
        update(customers).where(customers.c.tenant_id == tenant_id).values(review_at=None)
    )


async def due_for_review(
    conn: AsyncConnection, now: datetime, after: tuple[str, str] | None, limit: int
) -> list[tuple[str, str]]:
    """Up to ``limit`` customers (tenant, customer) whose assessment can have changed
    with time alone by ``now``, in (tenant, customer) order after ``after``."""
    query = select(customers.c.tenant_id, customers.c.customer_id).where(
        customers.c.merged_into.is_(None),
        customers.c.review_at.is_(None) | (customers.c.review_at <= now),
    )
    if after is not None:
        tenant_id, customer_id = after
        query = query.where(
            (customers.c.tenant_id > tenant_id)
            | ((customers.c.tenant_id == tenant_id) & (customers.c.customer_id > customer_id))
        )
    rows = await conn.execute(
        query.order_by(customers.c.tenant_id, customers.c.customer_id).limit(limit)
    )
    return [(str(t), str(c)) for t, c in rows]
