"""Reminders as reps read them (``GET /api/v1/reminders?assignee=``): one row per
reminder, inserted once; the insert that succeeds is the one that fires the event."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column, Date, Index, MetaData, String, Table, select
from sqlalchemy.ext.asyncio import AsyncConnection

from libs.events.catalog.alerts import ReminderDue
from libs.platform.db import UtcDateTime
from services.alerts.read_model import insert

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


async def first_time(
    conn: AsyncConnection, tenant_id: str, reminder: ReminderDue, at: datetime
) -> bool:
    """Record the reminder; False when it had fired already."""
    result = await conn.execute(
        insert(conn, reminders)
        .values(
            tenant_id=tenant_id,
            reminder_id=reminder.reminder_id,
            kind=reminder.kind,
            customer_id=reminder.customer_id,
            assignee_id=reminder.assignee_id,
            subject_id=reminder.subject_id,
            due_on=reminder.due_on,
            sentence=reminder.sentence[:500],
            fired_at=at,
        )
        .on_conflict_do_nothing()
        .returning(reminders.c.reminder_id)
    )
    return result.first() is not None


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
