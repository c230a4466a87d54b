"""Calendar periods in UTC: a month starts on its 1st, a week on its Monday."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Literal

Grain = Literal["month", "week"]


def period_of(when: datetime | date, grain: Grain) -> date:
    day = when.astimezone(UTC).date() if isinstance(when, datetime) else when
    if grain == "month":
        return day.replace(day=1)
    return day - timedelta(days=day.weekday())


def next_period(start: date, grain: Grain) -> date:
    if grain == "week":
        return start + timedelta(days=7)
    return date(start.year + start.month // 12, start.month % 12 + 1, 1)


def periods_between(first: date, later: date, grain: Grain) -> int:
    """How many periods ``later`` is after ``first`` (both period starts)."""
    if grain == "week":
        return (later - first).days // 7
    return (later.year - first.year) * 12 + later.month - first.month


def periods(start: date, end: date, grain: Grain) -> list[date]:
    """The period starts from ``start``'s period to ``end``'s, both included."""
    found, current, last = [], period_of(start, grain), period_of(end, grain)
    while current <= last:
        found.append(current)
        current = next_period(current, grain)
    return found


def at_start(day: date) -> datetime:
    return datetime.combine(day, time(), UTC)


def label(start: date, grain: Grain) -> str:
    """``2026-03`` for a month; ``2026-W10`` for an ISO week."""
    if grain == "month":
        return start.strftime("%Y-%m")
    year, week, _ = start.isocalendar()
    return f"{year}-W{week:02d}"
