"""The customer directory: every customer the facts name is known here (registered or
not yet), with its owner, and who it is now once merged into a survivor."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from libs.platform.db import upsert_into as insert
from services.alerts.read_model.churn_facts.tables import NEVER_BOUGHT, customers, facts


async def know_customer(
    conn: AsyncConnection,
    tenant_id: str,
    customer_id: str,
    *,
    registered_at: datetime | None = None,
    owner_id: str | None = None,
) -> None:
    values: dict[str, Any] = {
        "tenant_id": tenant_id,
        "customer_id": customer_id,
        "owner_id": owner_id,
        "registered_at": registered_at,
        "level": "none",
        "score": 0,
        "version": 0,
        "open_alert_id": None,
        "last_order_at": NEVER_BOUGHT,
    }
    stmt = insert(conn, customers).values(values)
    changes = {}
    if registered_at is not None:
        changes = {"registered_at": registered_at, "owner_id": owner_id}
    await conn.execute(
        stmt.on_conflict_do_update(index_elements=["tenant_id", "customer_id"], set_=changes)
        if changes
        else stmt.on_conflict_do_nothing()
    )


async def know_customers(conn: AsyncConnection, tenant_id: str, customer_ids: set[str]) -> None:
    """``know_customer`` for many customers in one statement, in customer order (two
    projector transactions insert their common customers in the same order)."""
    await conn.execute(
        insert(conn, customers).on_conflict_do_nothing(),
        [
            {
                "tenant_id": tenant_id,
                "customer_id": customer_id,
                "owner_id": None,
                "registered_at": None,
                "level": "none",
                "score": 0,
                "version": 0,
                "open_alert_id": None,
                "last_order_at": NEVER_BOUGHT,
            }
            for customer_id in sorted(customer_ids)
        ],
    )


async def register_customers(
    conn: AsyncConnection, tenant_id: str, registered: Mapping[str, tuple[datetime, str | None]]
) -> None:
    """``know_customer`` with registration time and owner for many customers (each
    once: its last registration in the batch)."""
    if not registered:
        return
    stmt = insert(conn, customers)
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["tenant_id", "customer_id"],
            set_={"registered_at": stmt.excluded.registered_at, "owner_id": stmt.excluded.owner_id},
        ),
        [
            {
                "tenant_id": tenant_id,
                "customer_id": customer_id,
                "owner_id": owner_id,
                "registered_at": registered_at,
                "level": "none",
                "score": 0,
                "version": 0,
                "open_alert_id": None,
                "last_order_at": NEVER_BOUGHT,
            }
            for customer_id, (registered_at, owner_id) in sorted(registered.items())
        ],
    )


async def set_owner(
    conn: AsyncConnection, tenant_id: str, customer_id: str, owner_id: str | None
) -> None:
    await know_customer(conn, tenant_id, customer_id)
    await conn.execute(
        update(customers)
        .where(customers.c.tenant_id == tenant_id, customers.c.customer_id == customer_id)
        .values(owner_id=owner_id)
    )


async def survivor_of(conn: AsyncConnection, tenant_id: str, customer_id: str) -> str:
    """Who the customer is now: a merged duplicate's facts belong to its survivor."""
    seen = {customer_id}
    while True:
        merged = (
            await conn.execute(
                select(customers.c.merged_into).where(
                    customers.c.tenant_id == tenant_id, customers.c.customer_id == customer_id
                )
            )
        ).scalar_one_or_none()
        if merged is None or merged in seen:
            return customer_id
        seen.add(merged)
        customer_id = merged


async def survivors_of(
    conn: AsyncConnection, tenant_id: str, customer_ids: Iterable[str]
) -> dict[str, str]:
    """``survivor_of`` for many customers: one query per step along the merges (one in
    all when none of them was merged away)."""
    merged: dict[str, str | None] = {}
    pending = set(customer_ids)
    while pending:
        rows = await conn.execute(
            select(customers.c.customer_id, customers.c.merged_into).where(
                customers.c.tenant_id == tenant_id, customers.c.customer_id.in_(sorted(pending))
            )
        )
        found = {r.customer_id: r.merged_into for r in rows}
        merged.update({c: found.get(c) for c in pending})
        pending = {m for m in found.values() if m is not None and m not in merged}
    survivors = {}
    for customer_id in customer_ids:
        current, seen = customer_id, {customer_id}
        while (next_one := merged.get(current)) is not None and next_one not in seen:
            seen.add(next_one)
            current = next_one
        survivors[customer_id] = current
    return survivors


async def merge(conn: AsyncConnection, tenant_id: str, duplicate: str, survivor: str) -> None:
    await know_customer(conn, tenant_id, survivor)
    await know_customer(conn, tenant_id, duplicate)
    await conn.execute(
        update(facts)
        .where(facts.c.tenant_id == tenant_id, facts.c.customer_id == duplicate)
        .values(customer_id=survivor)
    )
    await conn.execute(
        update(customers)
        .where(customers.c.tenant_id == tenant_id, customers.c.customer_id == duplicate)
        .values(merged_into=survivor, level="none", score=0)
    )


async def customer(
    conn: AsyncConnection, tenant_id: str, customer_id: str, *, lock: bool = False
) -> Any | None:
    query = select(customers).where(
        customers.c.tenant_id == tenant_id, customers.c.customer_id == customer_id
    )
    if lock:
        query = query.with_for_update()
    return (await conn.execute(query)).one_or_none()


async def lock_customers(
    conn: AsyncConnection, tenant_id: str, customer_ids: Sequence[str]
) -> dict[str, Any]:
    """The customers' rows, locked in one statement in customer order: every writer
    (projector batches on other partitions, the sweep, a user's response) that locks
    several takes them in that order, so none waits on another in a circle."""
    rows = await conn.execute(
        select(customers)
        .where(customers.c.tenant_id == tenant_id, customers.c.customer_id.in_(list(customer_ids)))
        .order_by(customers.c.customer_id)
        .with_for_update()
    )
    return {r.customer_id: r for r in rows}


async def tenants(conn: AsyncConnection) -> list[str]:
    """Every tenant with a customer here."""
    rows = await conn.execute(select(customers.c.tenant_id).distinct())
    return sorted(str(r[0]) for r in rows)
