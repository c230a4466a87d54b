"""The weekly risk list: for each owner, the customers at medium or high risk at the
end of the week, as new (not at risk when the week began), rising (at risk then too,
scoring higher now) or still open (at risk then and now, not higher).

Weeks are ISO weeks in the tenant's time zone (its rules' ``time_zone``, UTC by
default); the list of a week is due the Monday after it, 09:00 there (decision 0048).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from services.alerts.domain.risk import ChurnRisk

WEEK = re.compile(r"^(\d{4})-W(\d{2})$")
AT_RISK = ("high", "medium")
# When the week's list is published: Monday after the week, this time, tenant's zone.
PUBLISHED_AT = time(9, 0)


class InvalidWeek(ValueError):
    pass


def week_start(week: str, zone: tzinfo = UTC) -> datetime:
    """Monday 00:00 of an ISO week (``2026-W49``) in ``zone``."""
    matched = WEEK.match(week)
    if matched is None:
        raise InvalidWeek("an ISO week, e.g. 2026-W49")
    try:
        monday = date.fromisocalendar(int(matched[1]), int(matched[2]), 1)
    except ValueError:
        raise InvalidWeek("no such week in that year") from None
    return datetime(monday.year, monday.month, monday.day, tzinfo=zone)


def week_of(moment: datetime, zone: tzinfo = UTC) -> str:
    year, week, _ = moment.astimezone(zone).isocalendar()
    return f"{year}-W{week:02d}"


def list_due(now: datetime, zone: tzinfo) -> tuple[str, datetime]:
    """The week whose list is due by ``now`` (the one before the latest Monday 09:00 in
    ``zone`` at or before ``now``), and that Monday 09:00."""
    local = now.astimezone(zone)
    monday = local.date() - timedelta(days=local.weekday())
    due = datetime.combine(monday, PUBLISHED_AT, zone)
    if local < due:
        monday -= timedelta(days=7)
        due = datetime.combine(monday, PUBLISHED_AT, zone)
    year, week, _ = (monday - timedelta(days=1)).isocalendar()
    return f"{year}-W{week:02d}", due


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


def week_bounds(week: str, now: datetime, zone: tzinfo = UTC) -> tuple[datetime, datetime]:
    """The moment before the week began, and its end (or now, for the running week)."""
    start = week_start(week, zone)
    # The next Monday's midnight on the wall clock (a week across a DST change is not
    # exactly seven days long).
    following = datetime.combine(start.date() + timedelta(days=7), time(), zone)
    end = min(following.astimezone(UTC), now)
    return (start - timedelta(microseconds=1)).astimezone(UTC), end
