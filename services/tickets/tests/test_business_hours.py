"""Business-hours arithmetic and SLA clocks, pure: given a history, the clock says."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from libs.events.catalog.tickets import BusinessCalendarDefined, WorkingHours
from services.tickets.domain.calendar import STANDARD, BusinessCalendar
from services.tickets.domain.sla import SlaState, clock_of, measure, segments

SHANGHAI = ZoneInfo("Asia/Shanghai")


def local(day: str, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(date.fromisoformat(day), time(hour, minute), SHANGHAI)


def hours(n: float) -> timedelta:
    return timedelta(hours=n)


# 2026-12-04 is a Friday, 2026-12-07 a Monday.


def test_business_time_stops_overnight() -> None:
    assert STANDARD.add(local("2026-12-01", 17), hours(2)) == local("2026-12-02", 10)


def test_business_time_skips_the_weekend() -> None:
    assert STANDARD.add(local("2026-12-04", 17), hours(2)) == local("2026-12-07", 10)
    assert STANDARD.working_time(local("2026-12-04", 17), local("2026-12-07", 10)) == hours(2)


def test_a_ticket_opened_out_of_hours_starts_counting_at_the_next_opening() -> None:
    assert STANDARD.add(local("2026-12-05", 23), hours(1)) == local("2026-12-07", 10)


def test_business_time_skips_holidays() -> None:
    calendar = BusinessCalendar(week=STANDARD.week, holidays=frozenset({date(2026, 12, 7)}))
    assert calendar.add(local("2026-12-04", 17), hours(2)) == local("2026-12-08", 10)


def test_a_make_up_day_is_worked_with_a_weekday_s_hours() -> None:
    calendar = BusinessCalendar(week=STANDARD.week, make_up_days=frozenset({date(2026, 12, 5)}))
    assert calendar.add(local("2026-12-04", 17), hours(2)) == local("2026-12-05", 10)


def test_a_lunch_break_is_not_business_time() -> None:
    calendar = BusinessCalendar.from_event(
        BusinessCalendarDefined(
            calendar="office",
            version=1,
            time_zone="Asia/Shanghai",
            week={
                "mon": [
                    WorkingHours(start="09:00", end="12:00"),
                    WorkingHours(start="13:00", end="18:00"),
                ],
            },
        )
    )
    assert calendar.add(local("2026-12-07", 11), hours(2)) == local("2026-12-07", 14)


def test_a_round_the_clock_calendar_counts_every_hour() -> None:
    calendar = BusinessCalendarDefined(
        calendar="247",
        version=1,
        time_zone="UTC",
        week={
            d: [WorkingHours(start="00:00", end="24:00")]
            for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
        },
    )
    start = local("2026-12-04", 17)
    assert BusinessCalendar.from_event(calendar).add(start, hours(30)) == start + hours(30)


def test_a_calendar_without_working_time_never_comes_due() -> None:
    assert BusinessCalendar(week={}).add(local("2026-12-04", 17), hours(1)) is None


def resolution(log: list[tuple[datetime, str]], now: datetime, minutes: int = 480) -> SlaState:
    running = segments("resolution", log[0][0], log, None)  # type: ignore[arg-type]
    return measure(
        "resolution",
        minutes,
        running,
        clock_of("resolution", running, log[-1][1]),  # type: ignore[arg-type]
        STANDARD,
        now,
    )


def test_the_resolution_clock_pauses_while_pending_across_a_weekend() -> None:
    # 2h used on Friday, pending over the weekend, back to open on Monday 15:00.
    log = [
        (local("2026-12-04", 10), "open"),
        (local("2026-12-04", 12), "pending"),
        (local("2026-12-07", 15), "open"),
    ]
    paused = resolution(log[:2], now=local("2026-12-07", 14))
    assert (paused.clock, paused.due_at, paused.left) == ("paused", None, hours(6))

    running = resolution(log, now=local("2026-12-07", 16))
    assert running.clock == "running"
    assert running.due_at == local("2026-12-08", 12)  # 3h on Monday, 3h on Tuesday
    assert running.left == hours(5)
    assert running.outcome is None


def test_a_target_missed_while_running_is_breached_and_shows_how_overdue() -> None:
    log = [(local("2026-12-04", 10), "open")]
    state = resolution(log, now=local("2026-12-07", 11), minutes=60)

    assert state.due_at == local("2026-12-04", 11)
    assert state.outcome == "breached"
    assert state.left == -hours(8 + 2 - 1)  # 7h Friday after 11:00, 2h Monday, 1h allowed


def test_a_target_solved_in_time_is_met_and_one_solved_late_is_breached() -> None:
    log = [(local("2026-12-04", 10), "open"), (local("2026-12-04", 11), "solved")]
    met = resolution(log, now=local("2026-12-09", 10), minutes=120)
    late = resolution(log, now=local("2026-12-09", 10), minutes=30)

    assert (met.clock, met.outcome, met.due_at) == ("stopped", "met", None)
    assert (late.clock, late.outcome, late.due_at) == (
        "stopped",
        "breached",
        local("2026-12-04", 10, 30),
    )


def test_reopening_runs_the_resolution_clock_on_from_where_it_stopped() -> None:
    log = [
        (local("2026-12-04", 10), "open"),
        (local("2026-12-04", 11), "solved"),
        (local("2026-12-07", 9), "open"),
    ]
    state = resolution(log, now=local("2026-12-07", 9, 30), minutes=120)

    assert state.due_at == local("2026-12-07", 10)
    assert state.left == hours(0.5)


def test_first_response_stops_at_the_first_public_reply_and_does_not_pause() -> None:
    opened = local("2026-12-04", 17, 30)
    log = [(opened, "open"), (local("2026-12-04", 17, 45), "pending")]
    running = segments("first_response", opened, log, None)  # type: ignore[arg-type]
    state = measure(
        "first_response",
        60,
        running,
        clock_of("first_response", running, "pending"),
        STANDARD,
        local("2026-12-07", 9, 15),
    )
    assert (state.clock, state.due_at, state.left) == (
        "running",
        local("2026-12-07", 9, 30),
        hours(0.25),
    )

    answered = segments("first_response", opened, log, local("2026-12-07", 9, 10))  # type: ignore[arg-type]
    state = measure(
        "first_response",
        60,
        answered,
        clock_of("first_response", answered, "pending"),
        STANDARD,
        local("2026-12-07", 12),
    )
    assert (state.clock, state.outcome) == ("stopped", "met")
