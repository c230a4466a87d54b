"""The tickets service's own query table, written in the same transaction as the events.

One row per ticket with what lists filter on, plus ``next_due_at``: the earliest
moment an SLA target of the ticket can be missed, which is how the breach
scheduler finds the tickets to look at without scanning them all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    and_,
    func,
    or_,
    select,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from libs.events.catalog.tickets import EscalationRule
from libs.platform.db import UtcDateTime, upsert_for
from libs.platform.dependencies import decode_cursor, encode_cursor
from services.tickets.domain.calendar import BusinessCalendar
from services.tickets.domain.escalation import next_look
from services.tickets.domain.sla import segments
from services.tickets.domain.ticket import Ticket

metadata = MetaData()

tickets = Table(
    "tickets",
    metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("ticket_id", String(64), primary_key=True),
    Column("customer_id", String(64), nullable=False),
    Column("subject", String(300), nullable=False),
    Column("channel", String(16), nullable=False),
    Column("category", String(16), nullable=False),
    Column("priority", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("assignee_id", String(64)),
    Column("group_name", String(64)),
    Column("breached", Boolean, nullable=False, default=False),
    Column("opened_at", UtcDateTime, nullable=False),
    Column("first_response_at", UtcDateTime),
    Column("solved_at", UtcDateTime),
    Column("next_due_at", UtcDateTime),
    # Business time to the first public reply, and that the resolution clock ran until
    # the ticket was (last) solved: what service statistics take medians of.
    Column("first_response_seconds", Integer),
    Column("resolution_seconds", Integer),
    Column("calendar", String(64)),
    Column("calendar_version", Integer),
    Column("version", Integer, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)
Index("ix_tickets_opened", tickets.c.tenant_id, tickets.c.opened_at, tickets.c.ticket_id)
Index("ix_tickets_customer", tickets.c.tenant_id, tickets.c.customer_id)
# Partial on PostgreSQL: only tickets whose clock can still run out are in it.
Index(
    "ix_tickets_next_due",
    tickets.c.next_due_at,
    postgresql_where=tickets.c.next_due_at.is_not(None),
)


async def save(
    conn: AsyncConnection,
    tenant_id: str,
    ticket: Ticket,
    calendar: BusinessCalendar,
    now: datetime,
    rules: Sequence[EscalationRule] = (),
    *,
    subject: str | None = None,
    channel: str | None = None,
) -> None:
    """Insert the ticket's row (subject and channel given: it was just opened) or update it."""
    first_response = None
    if ticket.first_response_at is not None:
        first_response = calendar.working_time(ticket.opened_at, ticket.first_response_at)
    resolution = None
    if ticket.status in ("solved", "closed"):
        ran = segments("resolution", ticket.opened_at, ticket.status_log, None)
        resolution = sum(
            (calendar.working_time(start, end or now) for start, end in ran), timedelta()
        )
    values: dict[str, Any] = {
        "customer_id": ticket.customer_id,
        "category": ticket.category,
        "priority": ticket.priority,
        "status": ticket.status,
        "assignee_id": ticket.assignee_id,
        "group_name": ticket.group,
        "breached": bool(ticket.breached),
        "opened_at": ticket.opened_at,
        "first_response_at": ticket.first_response_at,
        "solved_at": ticket.solved_at,
        "next_due_at": next_look(ticket, calendar, now, rules),
        "first_response_seconds": _seconds(first_response),
        "resolution_seconds": _seconds(resolution),
        "calendar": ticket.sla.calendar if ticket.sla else None,
        "calendar_version": ticket.sla.calendar_version if ticket.sla else None,
        "version": ticket.version,
        "updated_at": now,
    }
    if subject is not None:
        await conn.execute(
            upsert_for(conn)(tickets).values(
                tenant_id=tenant_id,
                ticket_id=ticket.id,
                subject=subject,
                channel=channel,
                **values,
            )
        )
        return
    await conn.execute(
        tickets.update()
        .where(tickets.c.tenant_id == tenant_id, tickets.c.ticket_id == ticket.id)
        .values(**values)
    )


async def forget_subjects(conn: AsyncConnection, tenant_id: str, customer_id: str) -> None:
    """The customer's personal data was erased: a subject is free text that often names
    them (the events' copies are sealed and now unreadable; this is the list's)."""
    await conn.execute(
        tickets.update()
        .where(tickets.c.tenant_id == tenant_id, tickets.c.customer_id == customer_id)
        .values(subject="")
    )


async def reschedule(
    conn: AsyncConnection,
    tenant_id: str,
    ticket: Ticket,
    calendar: BusinessCalendar,
    now: datetime,
    rules: Sequence[EscalationRule] = (),
) -> None:
    """Only ``next_due_at``, and only if the row is still at the ticket's version."""
    await conn.execute(
        tickets.update()
        .where(
            tickets.c.tenant_id == tenant_id,
            tickets.c.ticket_id == ticket.id,
            tickets.c.version == ticket.version,
        )
        .values(next_due_at=next_look(ticket, calendar, now, rules))
    )


def _seconds(value: timedelta | None) -> int | None:
    return None if value is None else int(value.total_seconds())


@dataclass(frozen=True)
class Due:
    tenant_id: str
    ticket_id: str
    next_due_at: datetime


async def due(engine: AsyncEngine, now: datetime, limit: int = 500) -> list[Due]:
    """Tickets with a target due by ``now`` (every tenant), the most overdue first."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(tickets.c.tenant_id, tickets.c.ticket_id, tickets.c.next_due_at)
            .where(tickets.c.next_due_at.is_not(None), tickets.c.next_due_at <= now)
            .order_by(tickets.c.next_due_at)
            .limit(limit)
        )
        return [Due(*r) for r in rows]


async def open_by_priority(engine: AsyncEngine) -> dict[str, int]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(tickets.c.priority, func.count())
            .where(tickets.c.status.in_(("open", "pending")))
            .group_by(tickets.c.priority)
        )
        return {p: int(n) for p, n in rows}


async def workload(
    engine: AsyncEngine, tenant_id: str, group: str, agents: Sequence[str]
) -> tuple[dict[str, int], str | None]:
    """Open tickets per agent, and the agent the group's newest ticket went to."""
    if not agents:
        return {}, None
    async with engine.connect() as conn:
        counts = await conn.execute(
            select(tickets.c.assignee_id, func.count())
            .where(
                tickets.c.tenant_id == tenant_id,
                tickets.c.assignee_id.in_(list(agents)),
                tickets.c.status.in_(("open", "pending")),
            )
            .group_by(tickets.c.assignee_id)
        )
        last = await conn.scalar(
            select(tickets.c.assignee_id)
            .where(
                tickets.c.tenant_id == tenant_id,
                tickets.c.group_name == group,
                tickets.c.assignee_id.in_(list(agents)),
            )
            .order_by(tickets.c.opened_at.desc(), tickets.c.ticket_id.desc())
            .limit(1)
        )
    return {a: int(n) for a, n in counts}, last


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    next_cursor: str | None


ROW = [
    tickets.c.ticket_id.label("id"),
    tickets.c.customer_id,
    tickets.c.subject,
    tickets.c.channel,
    tickets.c.category,
    tickets.c.priority,
    tickets.c.status,
    tickets.c.assignee_id,
    tickets.c.group_name.label("group"),
    tickets.c.breached,
    tickets.c.opened_at,
    tickets.c.first_response_at,
    tickets.c.solved_at,
    tickets.c.next_due_at,
    tickets.c.version,
]


async def search(
    engine: AsyncEngine,
    tenant_id: str,
    *,
    filters: dict[str, Any],
    cursor: str | None,
    limit: int,
) -> Page:
    """Newest first; ``filters`` maps column names to the value they must equal."""
    query = select(*ROW).where(tickets.c.tenant_id == tenant_id)
    for name, value in filters.items():
        if value is not None:
            column = tickets.c.group_name if name == "group" else tickets.c[name]
            query = query.where(column == value)
    if cursor is not None:
        at, after_id = decode_cursor(cursor, datetime, str)
        query = query.where(
            or_(
                tickets.c.opened_at < at,
                and_(tickets.c.opened_at == at, tickets.c.ticket_id < after_id),
            )
        )
    query = query.order_by(tickets.c.opened_at.desc(), tickets.c.ticket_id.desc()).limit(limit + 1)
    async with engine.connect() as conn:
        rows = [dict(r._mapping) for r in await conn.execute(query)]
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1]["opened_at"], rows[-1]["id"])
    return Page(rows, next_cursor)


async def subject_of(engine: AsyncEngine, tenant_id: str, ticket_id: str) -> dict[str, Any] | None:
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(*ROW).where(
                    tickets.c.tenant_id == tenant_id, tickets.c.ticket_id == ticket_id
                )
            )
        ).first()
        return dict(row._mapping) if row else None
