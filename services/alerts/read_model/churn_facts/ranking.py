"""The ranking read from the kept assessments: pages by keyset, the customers ranked as
of a time, and how many stand at each level."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection

from libs.events.catalog.alerts import RiskLevel
from services.alerts.read_model.churn_facts.tables import customers


async def ranked_customers(
    conn: AsyncConnection, tenant_id: str, as_of: datetime, owner_id: str | None = None
) -> list[Any]:
    """The tenant's customers as of then: registered by then, not merged away."""
    query = select(customers).where(
        customers.c.tenant_id == tenant_id,
        customers.c.merged_into.is_(None),
        (customers.c.registered_at.is_(None)) | (customers.c.registered_at <= as_of),
    )
    if owner_id is not None:
        query = query.where(customers.c.owner_id == owner_id)
    return list(await conn.execute(query))


# The kept ranking's two orders: by revenue at risk (the default: where a call saves
# the most) or by score (the likeliest to leave first).
RankOrder = Literal["revenue_at_risk", "score"]


@dataclass(frozen=True, slots=True)
class RankPosition:
    """Where a page of the kept ranking ends: the next page starts after it. With a
    revenue at risk, a page of the order by it; without, of the order by score."""

    score: int
    lapse_rank: int
    customer_id: str
    revenue_at_risk: int | None = None


async def ranking_page(
    conn: AsyncConnection,
    tenant_id: str,
    now: datetime,
    *,
    order: RankOrder = "revenue_at_risk",
    level: RiskLevel | None = None,
    owner_id: str | None = None,
    after: RankPosition | None = None,
    limit: int = 50,
) -> list[Any]:
    """A page of the kept ranking by keyset: the largest revenue at risk first (with
    ``order`` "revenue_at_risk"), then the highest score, then the likelier lapsed
    (the kept lapse index), then the customer id, every key descending so that one
    index reads the page from the position on, whatever its depth (decision 0106);
    registered by ``now``, not merged away."""
    c = customers.c
    query = select(customers).where(
        c.tenant_id == tenant_id,
        c.merged_into.is_(None),
        c.registered_at.is_(None) | (c.registered_at <= now),
    )
    if level is not None:
        query = query.where(c.level == level)
    if owner_id is not None:
        query = query.where(c.owner_id == owner_id)
    keys: list[Any] = [c.score, c.lapse_rank, c.customer_id]
    if order == "revenue_at_risk":
        keys.insert(0, c.revenue_at_risk)
    if after is not None:
        at: list[Any] = [after.score, after.lapse_rank, after.customer_id]
        if order == "revenue_at_risk":
            at.insert(0, after.revenue_at_risk or 0)
        query = query.where(tuple_(*keys) < tuple_(*at))
    ordering = [key.desc() for key in keys]
    return list(await conn.execute(query.order_by(*ordering).limit(limit)))


async def tenant_size(conn: AsyncConnection, tenant_id: str, limit: int) -> int:
    """How many customers the tenant has, counted up to ``limit`` + 1 (enough to tell
    whether it is over ``limit`` without counting a large tenant whole)."""
    some = (
        select(customers.c.customer_id)
        .where(customers.c.tenant_id == tenant_id, customers.c.merged_into.is_(None))
        .limit(limit + 1)
        .subquery()
    )
    return int((await conn.execute(select(func.count()).select_from(some))).scalar_one())


async def customers_by_level(conn: AsyncConnection) -> dict[str, int]:
    """How many customers (every tenant, not merged away) stand at each level."""
    rows = await conn.execute(
        select(customers.c.level, func.count())
        .where(customers.c.merged_into.is_(None))
        .group_by(customers.c.level)
    )
    return {str(level): int(n) for level, n in rows}
