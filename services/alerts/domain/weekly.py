"""The weekly risk list: for each owner, the customers at medium or high risk at the
end of the week, as new (not at risk when the week began), rising (at risk then too,
scoring higher now) or still open (at risk then and now, not higher)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from services.alerts.domain.risk import ChurnRisk

WEEK = re.compile(r"^(\d{4})-W(\d{2})$")
AT_RISK = ("high", "medium")


class InvalidWeek(ValueError):
    pass


def week_start(week: str) -> datetime:
    """Monday 00:00 UTC of an ISO week (``2026-W49``)."""
    matched = WEEK.match(week)
    if matched is None:
        raise InvalidWeek("an ISO week, e.g. 2026-W49")
    try:
        monday = date.fromisocalendar(int(matched[1]), int(matched[2]), 1)
    except ValueError:
        raise InvalidWeek("no such week in that year") from None
    return datetime(monday.year, monday.month, monday.day, tzinfo=UTC)


def week_of(moment: datetime) -> str:
    year, week, _ = moment.isocalendar()
    return f"{year}-W{week:02d}"


@dataclass
class OwnerList:
    owner_id: str | None
    new: list[ChurnRisk] = field(default_factory=list)
    rising: list[ChurnRisk] = field(default_factory=list)
    still_open: list[ChurnRisk] = field(default_factory=list)


def weekly_lists(
    at_start: Mapping[str, ChurnRisk],
    at_end: Iterable[tuple[ChurnRisk, str | None]],
) -> list[OwnerList]:
    """``at_end`` in ranking order, each with its owner; lists by owner (unowned last)."""
    lists: dict[str | None, OwnerList] = {}
    for risk, owner_id in at_end:
        if risk.level not in AT_RISK:
            continue
        owned = lists.setdefault(owner_id, OwnerList(owner_id))
        before = at_start.get(risk.customer_id)
        if before is None or before.level not in AT_RISK:
            owned.new.append(risk)
        elif risk.score > before.score:
            owned.rising.append(risk)
        else:
            owned.still_open.append(risk)
    return sorted(lists.values(), key=lambda o: (o.owner_id is None, o.owner_id or ""))


def week_bounds(week: str, now: datetime) -> tuple[datetime, datetime]:
    """The moment before the week began, and its end (or now, for the running week)."""
    start = week_start(week)
    end = min(start + timedelta(days=7), now)
    return start - timedelta(microseconds=1), end
