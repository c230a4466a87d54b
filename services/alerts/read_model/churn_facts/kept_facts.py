"""The facts kept per customer: added once per event, read by ``as_of`` (all at once, or
streamed a customer at a time in customer order when a whole tenant is ranked)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from libs.platform.db import upsert_into as insert
from services.alerts.domain.facts import Fact, FactKind
from services.alerts.domain.value import Purchases
from services.alerts.read_model.churn_facts.directory import know_customers
from services.alerts.read_model.churn_facts.tables import customers, facts


def _fact_row(tenant_id: str, customer_id: str, fact: Fact) -> dict[str, Any]:
    return {
        "tenant_id": tenant_id,
        "event_id": fact.event_id,
        "customer_id": customer_id,
        "kind": fact.kind.value,
        "at": fact.at,
        "ref": fact.ref[:64],
        "value": fact.value,
        "until": fact.until,
        "flag": fact.flag,
    }


async def add_fact(conn: AsyncConnection, tenant_id: str, customer_id: str, fact: Fact) -> None:
    await add_facts(conn, tenant_id, [(customer_id, fact)])


async def add_facts(
    conn: AsyncConnection, tenant_id: str, found: Sequence[tuple[str, Fact]]
) -> None:
    """Keep facts under their customers (known from now on), two statements for all; a
    fact kept already (its event applied before) stays as it is."""
    if not found:
        return
    await know_customers(conn, tenant_id, {customer_id for customer_id, _ in found})
    await conn.execute(
        insert(conn, facts).on_conflict_do_nothing(),
        [_fact_row(tenant_id, customer_id, fact) for customer_id, fact in found],
    )


def _fact(row: Any) -> Fact:
    return Fact(FactKind(row.kind), row.at, row.event_id, row.ref, row.value, row.until, row.flag)


async def facts_of(
    conn: AsyncConnection,
    tenant_id: str,
    as_of: datetime,
    customer_ids: Iterable[str] | None = None,
) -> dict[str, list[Fact]]:
    """The facts that had happened by ``as_of``, per customer."""
    query = select(facts).where(facts.c.tenant_id == tenant_id, facts.c.at <= as_of)
    if customer_ids is not None:
        query = query.where(facts.c.customer_id.in_(list(customer_ids)))
    found: dict[str, list[Fact]] = defaultdict(list)
    for row in await conn.execute(query):
        found[row.customer_id].append(_fact(row))
    return found


# Rows fetched from the server at a time when facts are streamed in customer order.
STREAM_ROWS = 5000


async def order_histories(
    conn: AsyncConnection, tenant_id: str, as_of: datetime
) -> dict[str, list[datetime]]:
    """Every customer's order times by ``as_of`` (cancelled orders left out)."""
    return {c: p.times for c, p in (await purchase_histories(conn, tenant_id, as_of)).items()}


async def purchase_histories(
    conn: AsyncConnection, tenant_id: str, as_of: datetime
) -> dict[str, Purchases]:
    """Every customer's orders by ``as_of`` (cancelled ones left out): their times and
    their net value (refunds known by then taken off), read in customer order: five
    narrow columns per row, not a fact object per order."""
    kinds = (FactKind.ORDER.value, FactKind.ORDER_CANCELLED.value, FactKind.REFUND.value)
    query = (
        select(facts.c.customer_id, facts.c.kind, facts.c.at, facts.c.ref, facts.c.value)
        .where(facts.c.tenant_id == tenant_id, facts.c.at <= as_of, facts.c.kind.in_(kinds))
        .order_by(facts.c.customer_id, facts.c.at)
        .execution_options(yield_per=STREAM_ROWS)
    )
    found: dict[str, Purchases] = {}
    rows: list[Any] = []
    current: str | None = None

    def close() -> None:
        if current is not None:
            cancelled = {r.ref for r in rows if r.kind == FactKind.ORDER_CANCELLED.value}
            orders = [r for r in rows if r.kind == FactKind.ORDER.value and r.ref not in cancelled]
            counted = {r.ref for r in orders}
            refunded = sum(
                r.value for r in rows if r.kind == FactKind.REFUND.value and r.ref in counted
            )
            found[current] = Purchases(
                [r.at for r in orders], sum(r.value for r in orders) - refunded
            )

    result = await conn.stream(query)
    # A partition at a time: iterating the async result row by row costs a switch to
    # the driver's greenlet per row.
    async for partition in result.partitions(STREAM_ROWS):
        for row in partition:
            if row.customer_id != current:
                close()
                current, rows = row.customer_id, []
            rows.append(row)
    close()
    return found


async def facts_by_customer(
    conn: AsyncConnection, tenant_id: str, as_of: datetime, owner_id: str | None = None
) -> AsyncIterator[tuple[str, list[Fact]]]:
    """Each customer's facts by ``as_of``, one customer at a time, in customer order:
    ranking a tenant holds one customer's facts at once, not the tenant's."""
    query = select(facts).where(facts.c.tenant_id == tenant_id, facts.c.at <= as_of)
    if owner_id is not None:
        owned = select(customers.c.customer_id).where(
            customers.c.tenant_id == tenant_id, customers.c.owner_id == owner_id
        )
        query = query.where(facts.c.customer_id.in_(owned))
    query = query.order_by(facts.c.customer_id, facts.c.at).execution_options(yield_per=STREAM_ROWS)
    current: str | None = None
    found: list[Fact] = []
    result = await conn.stream(query)
    async for partition in result.partitions(STREAM_ROWS):
        for row in partition:
            if row.customer_id != current:
                if current is not None:
                    yield current, found
                current, found = row.customer_id, []
            found.append(_fact(row))
    if current is not None:
        yield current, found
