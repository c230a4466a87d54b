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
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
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
    bindparam,
    func,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from libs.events.catalog.alerts import ChurnRules, RiskLevel
from libs.platform.db import JsonDocument, UtcDateTime, upsert_for
from services.alerts.domain.facts import Fact, FactKind
from services.alerts.domain.rules import check_rules, default_rules

metadata = MetaData()


def insert(conn: AsyncConnection, table: Table) -> Any:
    """An insert with ON CONFLICT in the connection's dialect (PostgreSQL or SQLite)."""
    return upsert_for(conn)(table)


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
    Index("ix_churn_customers_owner", "tenant_id", "owner_id"),
    Index("ix_churn_customers_rank", "tenant_id", "score", "last_order_at", "customer_id"),
    Index("ix_churn_customers_review", "review_at"),
)

NEVER_BOUGHT = datetime(9999, 12, 31, tzinfo=UTC)

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


# Rows fetched from the server at a time when facts are streamed in customer order.
STREAM_ROWS = 5000


async def order_histories(
    conn: AsyncConnection, tenant_id: str, as_of: datetime
) -> dict[str, list[datetime]]:
    """Every customer's order times by ``as_of`` (cancelled orders left out), read in
    customer order: four narrow columns per row, not a fact object per order."""
    query = (
        select(facts.c.customer_id, facts.c.kind, facts.c.at, facts.c.ref)
        .where(
            facts.c.tenant_id == tenant_id,
            facts.c.at <= as_of,
            facts.c.kind.in_([FactKind.ORDER.value, FactKind.ORDER_CANCELLED.value]),
        )
        .order_by(facts.c.customer_id, facts.c.at)
        .execution_options(yield_per=STREAM_ROWS)
    )
    found: dict[str, list[datetime]] = {}
    rows: list[Any] = []
    current: str | None = None

    def close() -> None:
        if current is not None:
            cancelled = {r.ref for r in rows if r.kind == FactKind.ORDER_CANCELLED.value}
            found[current] = [
                r.at for r in rows if r.kind == FactKind.ORDER.value and r.ref not in cancelled
            ]

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
