"""The ranking read from the kept assessments: pages by keyset, the customers ranked as
of a time, and how many stand at each level."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
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


@dataclass(frozen=True, slots=True)
class RankPosition:
    """Where a page of the kept ranking ends: the next page starts after it."""

    score: int
    last_order_at: datetime
    customer_id: str


async def ranking_page(
    conn: AsyncConnection,
    tenant_id: str,
    now: datetime,
    *,
    level: RiskLevel | None = None,
    owner_id: str | None = None,
    after: RankPosition | None = None,
    limit: int = 50,
) -> list[Any]:
    """A page of the kept ranking by keyset: highest score first, then the longest
    without an order, then the customer id; registered by ``now``, not merged away."""
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
    if after is not None:
        query = query.where(
            (c.score < after.score)
            | ((c.score == after.score) & (c.last_order_at > after.last_order_at))
            | (
                (c.score == after.score)
                & (c.last_order_at == after.last_order_at)
                & (c.customer_id > after.customer_id)
            )
        )
    query = query.order_by(c.score.desc(), c.last_order_at, c.customer_id).limit(limit)
    return list(await conn.execute(query))


async def customers_by_level(conn: AsyncConnection) -> dict[str, int]:
    """How many customers (every tenant, not merged away) stand at each level."""
    rows = await conn.execute(
        select(customers.c.level, func.count())
        .where(customers.c.merged_into.is_(None))
        .group_by(customers.c.level)
    )
    return {str(level): int(n) for level, n in rows}
