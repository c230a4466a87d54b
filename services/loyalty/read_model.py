"""The loyalty service's query tables, written in the same transaction as the events.

``loyalty_accounts``: one row per customer (balance, tier, next expiry: what the
expiry sweep and the programme statistics read). ``loyalty_lines``: one row per
ledger line, with the balance after it. A line caused by another service's event
carries that event's id, and a unique index refuses a second line for it: the last
guard, below the ledger's own refusal, against earning twice.
``loyalty_monthly``: points issued, redeemed, expired, clawed back per month.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    and_,
    func,
    select,
    text,
    tuple_,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from libs.events.catalog import DomainEvent
from libs.events.catalog.loyalty import (
    OwedPointsRecovered,
    PointsAdjusted,
    PointsClawedBack,
    PointsEarned,
    PointsExpired,
    PointsRedeemed,
    RedemptionCancelled,
)
from libs.platform.birthdays import birthday_table, keep_birthday
from libs.platform.db import BigId, JsonDocument, UtcDateTime, is_postgres, upsert_for
from services.loyalty.domain.ledger import Ledger, line_points

metadata = MetaData()

accounts = Table(
    "loyalty_accounts",
    metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("customer_id", String(64), primary_key=True),
    Column("balance", BigId, nullable=False),
    Column("owed", BigId, nullable=False),
    Column("tier", String(64)),
    Column("version", Integer, nullable=False),
    # When the sweep next has work on this ledger: a lot expires, or an order leaves
    # the tier window of a customer above the lowest tier.
    Column("next_due_at", UtcDateTime),
    Column("merged_into", String(64)),
    Column("updated_at", UtcDateTime, nullable=False),
)
Index("ix_loyalty_accounts_due", accounts.c.next_due_at)

lines = Table(
    "loyalty_lines",
    metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("customer_id", String(64), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("type", String(200), nullable=False),
    Column("points", BigId, nullable=False),
    Column("balance_after", BigId, nullable=False),
    Column("source_event_id", String(64)),
    Column("data", JsonDocument, nullable=False),
    Column("recorded_at", UtcDateTime, nullable=False),
)
Index(
    "uq_loyalty_lines_source",
    lines.c.tenant_id,
    lines.c.source_event_id,
    unique=True,
    postgresql_where=lines.c.source_event_id.is_not(None),
    sqlite_where=lines.c.source_event_id.is_not(None),
)

monthly = Table(
    "loyalty_monthly",
    metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("month", String(7), primary_key=True),
    Column("issued", BigId, nullable=False, default=0),
    Column("redeemed", BigId, nullable=False, default=0),
    Column("expired", BigId, nullable=False, default=0),
    Column("clawed_back", BigId, nullable=False, default=0),
    Column("adjusted", BigId, nullable=False, default=0),
)

# Customers contacts has registered: a ledger of an id nobody registered is a 404.
members = Table(
    "loyalty_members",
    metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("customer_id", String(64), primary_key=True),
    Column("registered_at", UtcDateTime, nullable=False),
)

# Month and day only (no year: the bonus needs no more). Personal data: erasure
# deletes the row; nothing else in this service is personal.
birthdays = birthday_table("loyalty_birthdays", metadata)
Index("ix_loyalty_birthdays_day", birthdays.c.month, birthdays.c.day)

# Which monthly figure a line counts in, and with which sign.
MONTHLY: dict[type[DomainEvent], tuple[str, int]] = {
    PointsEarned: ("issued", 1),
    PointsRedeemed: ("redeemed", 1),
    RedemptionCancelled: ("redeemed", -1),
    PointsExpired: ("expired", 1),
    PointsClawedBack: ("clawed_back", 1),
    OwedPointsRecovered: ("clawed_back", 1),
    PointsAdjusted: ("adjusted", 1),
}


def _lock_key(*parts: str) -> int:
    # A signed 64-bit key for pg_advisory_xact_lock(bigint), stable across processes.
    digest = hashlib.blake2b("\x1f".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


async def lock(conn: AsyncConnection, tenant_id: str, *streams: str) -> None:
    """Writers of one ledger (and one reward's stock) take turns (PostgreSQL).

    The version check alone keeps the ledger right; waiting here instead of failing
    it lets fifty concurrent redemptions each be decided on the balance the previous
    one left. Callers lock the customer before the reward: no deadlock.
    """
    if not is_postgres(conn.engine):
        return
    calls = ", ".join(f"pg_advisory_xact_lock(:k{i})" for i in range(len(streams)))
    params = {f"k{i}": _lock_key(tenant_id, s) for i, s in enumerate(streams)}
    await conn.execute(text(f"SELECT {calls}"), params)


def _source_of(event: DomainEvent) -> str | None:
    if isinstance(event, PointsEarned | PointsClawedBack):
        return event.source_event_id
    return None


@dataclass(frozen=True, slots=True)
class LedgerChange:
    """What one decision did to one ledger: the query tables follow it."""

    before: Ledger
    events: Sequence[DomainEvent]
    after: Ledger
    due_at: datetime | None


async def record(
    conn: AsyncConnection,
    tenant_id: str,
    before: Ledger,
    events: Sequence[DomainEvent],
    after: Ledger,
    now: datetime,
    due_at: datetime | None,
) -> None:
    await record_many(conn, tenant_id, [LedgerChange(before, events, after, due_at)], now)


async def record_many(
    conn: AsyncConnection, tenant_id: str, changes: Sequence[LedgerChange], now: datetime
) -> None:
    """The lines, the monthly figures and the accounts of many ledgers: three statements
    whatever their number (a batch of earnings is recorded as one decision is)."""
    rows, counts = _lines_and_figures(tenant_id, changes, now)
    if rows:
        await conn.execute(lines.insert(), rows)
    await _add_monthly_figures(conn, tenant_id, counts)
    if not changes:
        return
    await _upsert_accounts(conn, tenant_id, changes, now)


def _lines_and_figures(
    tenant_id: str, changes: Sequence[LedgerChange], now: datetime
) -> tuple[list[dict[str, Any]], dict[str, dict[str, int]]]:
    """A line per event that moves points, numbered by the ledger's version and carrying
    the balance after it; and what they add to this month's figures."""
    rows: list[dict[str, Any]] = []
    counts: dict[str, dict[str, int]] = {}
    month = now.strftime("%Y-%m")
    for change in changes:
        before = change.before
        balance = before.balance
        for version, event in enumerate(change.events, start=before.version + 1):
            points = line_points(event)
            if points is None:
                continue
            balance += points
            rows.append(
                {
                    "tenant_id": tenant_id,
                    "customer_id": before.customer_id,
                    "version": version,
                    "type": type(event).type_name,
                    "points": points,
                    "balance_after": balance,
                    "source_event_id": _source_of(event),
                    "data": event.model_dump(mode="json"),
                    "recorded_at": now,
                }
            )
            figure = MONTHLY.get(type(event))
            if figure is not None and points:
                name, sign = figure
                counts.setdefault(month, {})
                counts[month][name] = counts[month].get(name, 0) + sign * abs(points)
    return rows, counts


async def _add_monthly_figures(
    conn: AsyncConnection, tenant_id: str, counts: dict[str, dict[str, int]]
) -> None:
    insert = upsert_for(conn)
    for month, figures in counts.items():
        stmt = insert(monthly).values(
            tenant_id=tenant_id,
            month=month,
            **{
                k: figures.get(k, 0)
                for k in ("issued", "redeemed", "expired", "clawed_back", "adjusted")
            },
        )
        await conn.execute(
            stmt.on_conflict_do_update(
                index_elements=[monthly.c.tenant_id, monthly.c.month],
                set_={k: monthly.c[k] + stmt.excluded[k] for k in figures},
            )
        )


async def _upsert_accounts(
    conn: AsyncConnection, tenant_id: str, changes: Sequence[LedgerChange], now: datetime
) -> None:
    # The last change of each ledger is how it stands.
    latest = {c.after.customer_id: c for c in changes}
    accounts_rows = [
        {
            "tenant_id": tenant_id,
            "customer_id": c.after.customer_id,
            "balance": c.after.balance,
            "owed": c.after.owed,
            "tier": c.after.tier,
            "version": c.after.version,
            "next_due_at": c.due_at,
            "merged_into": c.after.merged_into,
            "updated_at": now,
        }
        for c in latest.values()
    ]
    stmt = upsert_for(conn)(accounts).values(accounts_rows)
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[accounts.c.tenant_id, accounts.c.customer_id],
            set_={
                k: stmt.excluded[k]
                for k in (
                    "balance",
                    "owed",
                    "tier",
                    "version",
                    "next_due_at",
                    "merged_into",
                    "updated_at",
                )
            },
        )
    )


async def add_member(conn: AsyncConnection, tenant_id: str, customer_id: str, at: datetime) -> None:
    insert = upsert_for(conn)
    await conn.execute(
        insert(members)
        .values(tenant_id=tenant_id, customer_id=customer_id, registered_at=at)
        .on_conflict_do_nothing()
    )


async def set_birthday(
    conn: AsyncConnection, tenant_id: str, customer_id: str, birthday: date | None
) -> None:
    await keep_birthday(conn, birthdays, tenant_id, customer_id, birthday)


async def birthdays_around(
    conn: AsyncConnection, days: Sequence[date]
) -> list[tuple[str, str, int, int]]:
    """Customers whose birthday falls on one of ``days`` (29 February: also the 28th)."""
    wanted = {(d.month, d.day) for d in days}
    if any((d.month, d.day) == (2, 28) for d in days):
        wanted.add((2, 29))
    found = await conn.execute(
        select(
            birthdays.c.tenant_id, birthdays.c.customer_id, birthdays.c.month, birthdays.c.day
        ).where(tuple_(birthdays.c.month, birthdays.c.day).in_(sorted(wanted)))
    )
    return [(t, c, int(m), int(d)) for t, c, m, d in found]


async def is_member(conn: AsyncConnection, tenant_id: str, customer_id: str) -> bool:
    found = await conn.execute(
        select(members.c.customer_id).where(
            members.c.tenant_id == tenant_id, members.c.customer_id == customer_id
        )
    )
    return found.first() is not None


# --- reads -----------------------------------------------------------------------------


async def ledger_lines(
    conn: AsyncConnection, tenant_id: str, customer_id: str, *, after: int, limit: int
) -> list[dict[str, Any]]:
    # The column is a 32-bit integer: no line is after its largest value, and a larger
    # ``after`` would overflow PostgreSQL's parameter (a 500).
    after = min(after, 2**31 - 1)
    rows = await conn.execute(
        select(lines)
        .where(
            lines.c.tenant_id == tenant_id,
            lines.c.customer_id == customer_id,
            lines.c.version > after,
        )
        .order_by(lines.c.version)
        .limit(limit)
    )
    return [dict(r._mapping) for r in rows]


async def due_for_sweep(conn: AsyncConnection, now: datetime, limit: int) -> list[tuple[str, str]]:
    rows = await conn.execute(
        select(accounts.c.tenant_id, accounts.c.customer_id)
        .where(accounts.c.next_due_at <= now)
        .order_by(accounts.c.next_due_at)
        .limit(limit)
    )
    return [(t, c) for t, c in rows]


async def statistics(conn: AsyncConnection, tenant_id: str) -> dict[str, Any]:
    live = and_(accounts.c.tenant_id == tenant_id, accounts.c.merged_into.is_(None))
    found = await conn.execute(
        select(accounts.c.tier, func.count()).where(live).group_by(accounts.c.tier)
    )
    tiers: list[tuple[str | None, int]] = [(tier, int(count)) for tier, count in found]
    # Registered customers who never had a ledger line hold the lowest tier (None).
    without_ledger = await conn.execute(
        select(func.count())
        .select_from(
            members.outerjoin(
                accounts,
                and_(
                    accounts.c.tenant_id == members.c.tenant_id,
                    accounts.c.customer_id == members.c.customer_id,
                ),
            )
        )
        .where(members.c.tenant_id == tenant_id, accounts.c.customer_id.is_(None))
    )
    tiers.append((None, int(without_ledger.scalar_one())))
    outstanding = await conn.execute(
        select(
            func.coalesce(func.sum(accounts.c.balance).filter(accounts.c.balance > 0), 0),
            func.coalesce(func.sum(accounts.c.owed), 0),
            func.coalesce(-func.sum(accounts.c.balance).filter(accounts.c.balance < 0), 0),
        ).where(live)
    )
    liability, owed, negative = outstanding.one()
    months = await conn.execute(
        select(monthly).where(monthly.c.tenant_id == tenant_id).order_by(monthly.c.month)
    )
    return {
        "members_per_tier": [(tier, count) for tier, count in tiers if count],
        "outstanding_points": int(liability),
        "owed_points": int(owed),
        "negative_balances": int(negative),
        "months": [{k: v for k, v in r._mapping.items() if k != "tenant_id"} for r in months],
    }
