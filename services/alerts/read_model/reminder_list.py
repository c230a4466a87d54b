"""Reminders as reps read them (``GET /api/v1/reminders?assignee=``): one row per
reminder, inserted once; the insert that succeeds is the one that fires the event."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    Index,
    MetaData,
    String,
    Table,
    delete,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from libs.events.catalog.alerts import ReminderDue
from libs.platform.birthdays import birthday_table, keep_birthday
from libs.platform.db import UtcDateTime
from libs.platform.db import upsert_into as insert
from services.alerts.domain.reminders import Birthday, FollowedTask

metadata = MetaData()

reminders = Table(
    "churn_reminders",
    metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("reminder_id", String(36), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("customer_id", String(64), nullable=False),
    Column("assignee_id", String(64), nullable=True),
    Column("subject_id", String(64), nullable=True),
    Column("due_on", Date, nullable=False),
    Column("sentence", String(500), nullable=False),
    Column("fired_at", UtcDateTime, nullable=False),
    Index("ix_churn_reminders_assignee", "tenant_id", "assignee_id", "due_on"),
)

# The pipeline's follow-up tasks about customers, followed for overdue reminders: ids,
# times and the assignee only (a task's title is free text a rep wrote: not kept).
followed_tasks = Table(
    "churn_tasks",
    metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("task_id", String(64), primary_key=True),
    Column("customer_id", String(64), nullable=False),
    Column("assignee_id", String(64), nullable=False),
    Column("due_at", UtcDateTime, nullable=False),
    Column("completed", Boolean, nullable=False),
    Index("ix_churn_tasks_customer", "tenant_id", "customer_id"),
)

# Customers' birthdays, month and day only (the reminder needs no more). The one piece
# of personal data in this service: erasure deletes the row (decision 0057).
birthdays = birthday_table("churn_birthdays", metadata)


async def set_birthday(
    conn: AsyncConnection, tenant_id: str, customer_id: str, birthday: date | None
) -> None:
    await keep_birthday(conn, birthdays, tenant_id, customer_id, birthday)


async def birthdays_of(
    conn: AsyncConnection, tenant_id: str, customer_ids: Iterable[str]
) -> dict[str, Birthday]:
    rows = await conn.execute(
        select(birthdays).where(
            birthdays.c.tenant_id == tenant_id, birthdays.c.customer_id.in_(list(customer_ids))
        )
    )
    return {r.customer_id: Birthday(int(r.month), int(r.day)) for r in rows}


async def move_birthday(
    conn: AsyncConnection, tenant_id: str, duplicate: str, survivor: str
) -> None:
    """A merged duplicate's birthday becomes the survivor's if it has none (the
    survivor keeps its own, as contacts does); the duplicate's row goes either way."""
    found = await birthdays_of(conn, tenant_id, [duplicate, survivor])
    await set_birthday(conn, tenant_id, duplicate, None)
    kept = found.get(duplicate)
    if kept is not None and survivor not in found:
        await conn.execute(
            birthdays.insert().values(
                tenant_id=tenant_id, customer_id=survivor, month=kept.month, day=kept.day
            )
        )


async def erase_birthday(conn: AsyncConnection, tenant_id: str, customer_id: str) -> None:
    """Erasure: the birthday goes, and so do the customer's birthday reminders (their
    day and the rule's window together would say roughly when it is)."""
    await set_birthday(conn, tenant_id, customer_id, None)
    await conn.execute(
        delete(reminders).where(
            reminders.c.tenant_id == tenant_id,
            reminders.c.customer_id == customer_id,
            reminders.c.kind == "birthday",
        )
    )


async def task_created(
    conn: AsyncConnection,
    tenant_id: str,
    task_id: str,
    customer_id: str,
    assignee_id: str,
    due_at: datetime,
) -> None:
    await conn.execute(
        insert(conn, followed_tasks)
        .values(
            tenant_id=tenant_id,
            task_id=task_id,
            customer_id=customer_id,
            assignee_id=assignee_id,
            due_at=due_at,
            completed=False,
        )
        .on_conflict_do_nothing()
    )


async def task_changed(
    conn: AsyncConnection, tenant_id: str, task_id: str, **changes: Any
) -> str | None:
    """Reschedule or complete a followed task; the customer it is about (None: a task
    about no customer, or one not followed)."""
    result = await conn.execute(
        update(followed_tasks)
        .where(followed_tasks.c.tenant_id == tenant_id, followed_tasks.c.task_id == task_id)
        .values(**changes)
        .returning(followed_tasks.c.customer_id)
    )
    row = result.first()
    return None if row is None else str(row[0])


async def open_tasks(
    conn: AsyncConnection, tenant_id: str, customer_ids: Iterable[str]
) -> dict[str, list[FollowedTask]]:
    """The customers' open follow-up tasks."""
    rows = await conn.execute(
        select(followed_tasks).where(
            followed_tasks.c.tenant_id == tenant_id,
            followed_tasks.c.customer_id.in_(list(customer_ids)),
            followed_tasks.c.completed.is_(False),
        )
    )
    found: dict[str, list[FollowedTask]] = {}
    for r in rows:
        found.setdefault(r.customer_id, []).append(FollowedTask(r.task_id, r.assignee_id, r.due_at))
    return found


async def move_tasks(conn: AsyncConnection, tenant_id: str, duplicate: str, survivor: str) -> None:
    """A merged duplicate's tasks are the survivor's to be reminded of."""
    await conn.execute(
        update(followed_tasks)
        .where(followed_tasks.c.tenant_id == tenant_id, followed_tasks.c.customer_id == duplicate)
        .values(customer_id=survivor)
    )


async def first_time(
    conn: AsyncConnection, tenant_id: str, reminder: ReminderDue, at: datetime
) -> bool:
    """Record the reminder; False when it had fired already."""
    return bool(await first_times(conn, tenant_id, [reminder], at))


async def first_times(
    conn: AsyncConnection, tenant_id: str, due: Sequence[ReminderDue], at: datetime
) -> set[str]:
    """Record the reminders in one statement; the ids of those that had not fired yet."""
    if not due:
        return set()
    rows = [
        {
            "tenant_id": tenant_id,
            "reminder_id": r.reminder_id,
            "kind": r.kind,
            "customer_id": r.customer_id,
            "assignee_id": r.assignee_id,
            "subject_id": r.subject_id,
            "due_on": r.due_on,
            "sentence": r.sentence[:500],
            "fired_at": at,
        }
        for r in due
    ]
    result = await conn.execute(
        insert(conn, reminders).on_conflict_do_nothing().returning(reminders.c.reminder_id), rows
    )
    return {str(r[0]) for r in result}


async def set_birthdays(
    conn: AsyncConnection, tenant_id: str, known: Mapping[str, date | None]
) -> None:
    """``set_birthday`` for many customers: two statements for all."""
    if not known:
        return
    await conn.execute(
        delete(birthdays).where(
            birthdays.c.tenant_id == tenant_id, birthdays.c.customer_id.in_(sorted(known))
        )
    )
    rows = [
        {"tenant_id": tenant_id, "customer_id": c, "month": b.month, "day": b.day}
        for c, b in sorted(known.items())
        if b is not None
    ]
    if rows:
        await conn.execute(birthdays.insert(), rows)


async def find(
    conn: AsyncConnection, tenant_id: str, assignee_id: str | None, limit: int
) -> list[dict[str, Any]]:
    query = select(reminders).where(reminders.c.tenant_id == tenant_id)
    if assignee_id is not None:
        query = query.where(reminders.c.assignee_id == assignee_id)
    query = query.order_by(reminders.c.due_on, reminders.c.reminder_id).limit(limit)
    return [
        {
            "reminder_id": r.reminder_id,
            "kind": r.kind,
            "customer_id": r.customer_id,
            "assignee_id": r.assignee_id,
            "subject_id": r.subject_id,
            "due_on": r.due_on.isoformat(),
            "sentence": r.sentence,
            "fired_at": r.fired_at.isoformat(),
        }
        for r in await conn.execute(query)
    ]
