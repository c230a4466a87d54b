"""SLA clocks, derived purely from a ticket's history, its applied targets and a calendar.

Nothing here is stored: a ticket's due times, time left and met/breached are
recomputed from its events whenever they are asked for, so a policy change, an
outage or a replay can never leave them wrong (decision 0024).

* First response runs from opening until the first public reply (or until the ticket
  is first solved without one).
* Resolution runs while the ticket is open, pauses while it is pending (waiting on
  the customer), stops when it is solved or closed and runs on after a reopen.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from libs.events.catalog.tickets import SlaTarget, Status
from services.tickets.domain.calendar import BusinessCalendar

ClockState = Literal["running", "paused", "stopped"]
Outcome = Literal["met", "breached"]
TARGETS: tuple[SlaTarget, ...] = ("first_response", "resolution")

Segment = tuple[datetime, datetime | None]  # None: still running


@dataclass(frozen=True, slots=True)
class SlaState:
    target: SlaTarget
    minutes: int
    clock: ClockState
    # When the target is (or was) missed; None while paused, or when it was met.
    due_at: datetime | None
    # Business time still left (negative: overdue by that much).
    left: timedelta
    # None while it can still go either way.
    outcome: Outcome | None


def segments(
    target: SlaTarget,
    opened_at: datetime,
    status_log: Sequence[tuple[datetime, Status]],
    first_response_at: datetime | None,
) -> list[Segment]:
    """The periods the target's clock ran, in order; the last one may be open."""
    if target == "first_response":
        stops = [at for at, status in status_log if status in ("solved", "closed")]
        if first_response_at is not None:
            stops.append(first_response_at)
        return [(opened_at, min(stops) if stops else None)]
    found: list[Segment] = []
    started: datetime | None = None
    for at, status in status_log:
        if status == "open" and started is None:
            started = at
        elif status != "open" and started is not None:
            found.append((started, at))
            started = None
    if started is not None:
        found.append((started, None))
    return found


def measure(
    target: SlaTarget,
    minutes: int,
    running: Sequence[Segment],
    clock: ClockState,
    calendar: BusinessCalendar,
    now: datetime,
    *,
    breached: bool = False,
) -> SlaState:
    """Where a target stands at ``now``. ``breached``: a breach was already recorded
    (a fact that stays, even if a later policy would have allowed more time)."""
    budget = timedelta(minutes=minutes)
    used = timedelta()
    for start, end in running:
        remaining = budget - used
        due = calendar.add(start, remaining)
        if end is None:
            used += calendar.working_time(start, now)
            overdue = breached or (due is not None and due <= now)
            return SlaState(
                target, minutes, clock, due, budget - used, "breached" if overdue else None
            )
        used += calendar.working_time(start, end)
        if due is not None and due < end:  # it ran out inside this segment
            return SlaState(target, minutes, clock, due, budget - used, "breached")
    outcome: Outcome | None = "breached" if breached else ("met" if clock == "stopped" else None)
    return SlaState(target, minutes, clock, None, budget - used, outcome)


def clock_of(target: SlaTarget, running: Sequence[Segment], status: Status) -> ClockState:
    if running and running[-1][1] is None:
        return "running"
    if target == "first_response" or status in ("solved", "closed"):
        return "stopped"
    return "paused"
