"""Business time: working hours per weekday in a time zone, holidays, make-up days.

SLA targets count only the working time of a calendar, so "4 business hours" from
17:00 on a Friday before a holiday ends on the next working day. Everything here is
arithmetic over instants; no clock is read.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from libs.events.catalog.tickets import BusinessCalendarDefined, Weekday

WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# A calendar whose working time runs out this far ahead never reaches a target: the
# bound keeps a calendar with no working day left from searching for ever.
HORIZON_DAYS = 3 * 366

Hours = tuple[tuple[time, time | None], ...]  # None end: until midnight


@dataclass(frozen=True, slots=True)
class BusinessCalendar:
    time_zone: str = "Asia/Shanghai"
    # Working hours by weekday (0 = Monday); a missing or empty day is not worked.
    week: Mapping[int, Hours] = field(default_factory=dict)
    holidays: frozenset[date] = frozenset()
    # Days worked though the week says otherwise (调休), with the hours of make_up_hours_of.
    make_up_days: frozenset[date] = frozenset()
    make_up_hours_of: int = 0
    name: str = "default"
    version: int = 0

    @classmethod
    def from_event(cls, event: BusinessCalendarDefined) -> BusinessCalendar:
        return cls(
            time_zone=event.time_zone,
            week={
                WEEKDAYS.index(day): tuple(
                    (parse_time(h.start), None if h.end == "24:00" else parse_time(h.end))
                    for h in hours
                )
                for day, hours in event.week.items()
            },
            holidays=frozenset(event.holidays),
            make_up_days=frozenset(event.make_up_days),
            make_up_hours_of=WEEKDAYS.index(event.make_up_hours_of),
            name=event.calendar,
            version=event.version,
        )

    def hours_on(self, day: date) -> Hours:
        if day in self.holidays:
            return ()
        if day in self.make_up_days:
            return self.week.get(self.make_up_hours_of, ())
        return self.week.get(day.weekday(), ())

    def working_periods(self, start: datetime) -> Iterator[tuple[datetime, datetime]]:
        """Working periods (aware instants) from ``start`` on, the first one clipped."""
        zone = ZoneInfo(self.time_zone)
        day = start.astimezone(zone).date()
        for _ in range(HORIZON_DAYS):
            for opens, closes in self.hours_on(day):
                begin = datetime.combine(day, opens, zone)
                end = (
                    datetime.combine(day + timedelta(days=1), time(0), zone)
                    if closes is None
                    else datetime.combine(day, closes, zone)
                )
                if end > start:
                    yield max(begin, start), end
            day += timedelta(days=1)

    def working_time(self, start: datetime, end: datetime) -> timedelta:
        """Business time between two instants (zero when ``end`` is not after ``start``)."""
        total = timedelta()
        if end <= start:
            return total
        for begin, finish in self.working_periods(start):
            if begin >= end:
                break
            total += min(finish, end) - begin
        return total

    def add(self, start: datetime, business: timedelta) -> datetime | None:
        """The instant when ``business`` working time has passed since ``start``
        (None: the calendar has no working time left within its horizon)."""
        remaining = business
        if remaining <= timedelta():
            # Already used up: due when it was used up, which the caller knows; from
            # ``start`` on nothing more accrues.
            return start
        for begin, finish in self.working_periods(start):
            if finish - begin >= remaining:
                return begin + remaining
            remaining -= finish - begin
        return None


def parse_time(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


# Used when a tenant has not defined the calendar a policy names: Monday to Friday,
# 09:00-18:00, Beijing time.
STANDARD = BusinessCalendar(
    week={d: ((time(9), time(18)),) for d in range(5)}, name="standard", version=0
)
