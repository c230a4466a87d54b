"""Customers' birthdays as a service keeps them: month and day only (a reminder or a
birthday bonus needs no more, and the year is personal data nobody here uses).

Loyalty (birthday bonuses) and alerts (birthday reminders) each keep a table of their
own, built and written here so the rule is one: a birthday replaces the last one, and
``None`` (cleared, or the customer erased) forgets it.
"""

from __future__ import annotations

from datetime import date
from enum import Enum
from typing import Final, Literal

from sqlalchemy import Column, Integer, MetaData, String, Table, delete
from sqlalchemy.ext.asyncio import AsyncConnection

from libs.events.catalog import DomainEvent
from libs.events.catalog.contacts import (
    CustomerMerged,
    CustomerMergedInto,
    CustomerRegistered,
    PersonalDataErased,
    ProfileChanged,
)


class _Unchanged(Enum):
    UNCHANGED = "unchanged"


UNCHANGED: Final = _Unchanged.UNCHANGED


def birthday_news(
    event: DomainEvent,
) -> date | Literal[_Unchanged.UNCHANGED] | None:
    """What a contacts event says of its customer's birthday, for every service that
    keeps one: a date (registered, changed, or absorbed from a merged duplicate),
    None (cleared, erased, or the customer merged away: its survivor carries it), or
    ``UNCHANGED``."""
    if isinstance(event, CustomerRegistered):
        return event.birthday
    if isinstance(event, ProfileChanged | CustomerMerged):
        if event.birthday is not None:
            return event.birthday
        if isinstance(event, ProfileChanged) and "birthday" in event.cleared:
            return None
        return UNCHANGED
    if isinstance(event, PersonalDataErased | CustomerMergedInto):
        return None
    return UNCHANGED


def birthday_table(name: str, metadata: MetaData) -> Table:
    return Table(
        name,
        metadata,
        Column("tenant_id", String(64), primary_key=True),
        Column("customer_id", String(64), primary_key=True),
        Column("month", Integer, nullable=False),
        Column("day", Integer, nullable=False),
    )


async def keep_birthday(
    conn: AsyncConnection, table: Table, tenant_id: str, customer_id: str, birthday: date | None
) -> None:
    """Keep the customer's birthday's month and day (None: forget it)."""
    await conn.execute(
        delete(table).where(table.c.tenant_id == tenant_id, table.c.customer_id == customer_id)
    )
    if birthday is not None:
        await conn.execute(
            table.insert().values(
                tenant_id=tenant_id,
                customer_id=customer_id,
                month=birthday.month,
                day=birthday.day,
            )
        )
