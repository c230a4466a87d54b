"""The alerts service's own tables: per-customer churn facts, the customers, the rules.

``churn_facts``: one row per event the churn rules read (a fact, keyed by the
event's id), under the customer it is about now (a merged duplicate's facts move to
the survivor). ``churn_customers``: every customer of the tenant (ranked even with no
fact), its current owner, and the level last assessed, so a rise to high is raised
once. ``churn_rules``: the tenant's rules in force and their stream's version.
The alerts users work are in ``alert_list``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    func,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from libs.events.catalog.alerts import ChurnRules, RiskLevel
from libs.platform.db import JsonDocument, UtcDateTime
from services.alerts.domain.facts import Fact, FactKind
from services.alerts.domain.rules import check_rules, default_rules

metadata = MetaData()


def insert(conn: AsyncConnection, table: Table) -> Any:
    """An insert with ON CONFLICT in the connection's dialect (PostgreSQL or SQLite)."""
    return (pg_insert if conn.dialect.name == "postgresql" else sqlite_insert)(table)


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
    Index("ix_churn_customers_owner", "tenant_id", "owner_id"),
)

rules_table = Table(
    "churn_rules",
    metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("rules", JsonDocument, nullable=False),
    Column("version", Integer, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)


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


async def add_fact(conn: AsyncConnection, tenant_id: str, customer_id: str, fact: Fact) -> None:
    await know_customer(conn, tenant_id, customer_id)
    await conn.execute(
        insert(conn, facts)
        .values(
            tenant_id=tenant_id,
            event_id=fact.event_id,
            customer_id=customer_id,
            kind=fact.kind.value,
            at=fact.at,
            ref=fact.ref[:64],
            value=fact.value,
            until=fact.until,
            flag=fact.flag,
        )
        .on_conflict_do_nothing()
    )


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


async def order_facts(
    conn: AsyncConnection, tenant_id: str, as_of: datetime
) -> dict[str, list[Fact]]:
    """Every customer's orders (and cancellations) by ``as_of``: the tenant's rhythm."""
    query = select(facts).where(
        facts.c.tenant_id == tenant_id,
        facts.c.at <= as_of,
        facts.c.kind.in_([FactKind.ORDER.value, FactKind.ORDER_CANCELLED.value]),
    )
    found: dict[str, list[Fact]] = defaultdict(list)
    for row in await conn.execute(query):
        found[row.customer_id].append(_fact(row))
    return found


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


async def customer(
    conn: AsyncConnection, tenant_id: str, customer_id: str, *, lock: bool = False
) -> Any | None:
    query = select(customers).where(
        customers.c.tenant_id == tenant_id, customers.c.customer_id == customer_id
    )
    if lock:
        query = query.with_for_update()
    return (await conn.execute(query)).one_or_none()


async def every_customer(conn: AsyncConnection) -> dict[str, list[str]]:
    """Every tenant's customers not merged away, by tenant."""
    found: dict[str, list[str]] = defaultdict(list)
    rows = await conn.execute(
        select(customers.c.tenant_id, customers.c.customer_id)
        .where(customers.c.merged_into.is_(None))
        .order_by(customers.c.tenant_id, customers.c.customer_id)
    )
    for tenant_id, customer_id in rows:
        found[tenant_id].append(customer_id)
    return found


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


async def rules_of(conn: AsyncConnection, tenant_id: str) -> tuple[ChurnRules, int]:
    row = (
        await conn.execute(
            select(rules_table.c.rules, rules_table.c.version).where(
                rules_table.c.tenant_id == tenant_id
            )
        )
    ).one_or_none()
    if row is None:
        return default_rules(), 0
    return check_rules(ChurnRules.model_validate(row.rules)), int(row.version)


async def save_rules(
    conn: AsyncConnection, tenant_id: str, rules: ChurnRules, version: int, at: datetime
) -> None:
    stmt = insert(conn, rules_table).values(
        tenant_id=tenant_id, rules=rules.model_dump(mode="json"), version=version, updated_at=at
    )
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["tenant_id"],
            set_={"rules": stmt.excluded.rules, "version": version, "updated_at": at},
        )
    )


async def customers_by_level(conn: AsyncConnection) -> dict[str, int]:
    """How many customers (every tenant, not merged away) stand at each level."""
    rows = await conn.execute(
        select(customers.c.level, func.count())
        .where(customers.c.merged_into.is_(None))
        .group_by(customers.c.level)
    )
    return {str(level): int(n) for level, n in rows}
