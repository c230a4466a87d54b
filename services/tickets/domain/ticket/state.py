"""The Ticket's state, a fold of its events: ``evolve`` applies one.

It keeps the times its SLA clocks need (when it was opened, first answered, and every
status it went through), so the clocks are a pure function of the stream (``sla.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime

from libs.events.catalog import DomainEvent
from libs.events.catalog.tickets import (
    Category,
    FollowUpVisitRecorded,
    Priority,
    SlaBreached,
    SlaPolicyApplied,
    SlaTarget,
    Status,
    TicketAssigned,
    TicketCustomerChanged,
    TicketEscalated,
    TicketOpened,
    TicketPriorityChanged,
    TicketReopened,
    TicketReplied,
    TicketStatusChanged,
)
from services.tickets.domain.calendar import BusinessCalendar
from services.tickets.domain.sla import TARGETS, SlaState, clock_of, measure, segments
from services.tickets.domain.ticket.errors import TicketNotFound


@dataclass(frozen=True, slots=True)
class AppliedSla:
    policy: str
    policy_version: int
    calendar: str
    calendar_version: int
    minutes: Mapping[SlaTarget, int]


@dataclass(frozen=True, slots=True)
class Ticket:
    id: str
    customer_id: str
    category: Category
    priority: Priority
    status: Status
    opened_at: datetime
    assignee_id: str | None = None
    group: str | None = None
    first_response_at: datetime | None = None
    status_log: tuple[tuple[datetime, Status], ...] = ()
    sla: AppliedSla | None = None
    breached: frozenset[SlaTarget] = frozenset()
    # (rule, target) escalations that fired: each fires once.
    escalated: frozenset[tuple[str, SlaTarget]] = frozenset()
    # A follow-up visit since the last (re)opening found the customer satisfied.
    satisfied_since_reopened: bool = False
    visits: frozenset[str] = frozenset()
    solved_at: datetime | None = None
    version: int = 0

    def sla_states(self, calendar: BusinessCalendar, now: datetime) -> dict[SlaTarget, SlaState]:
        """Each target's clock at ``now``, measured with the applied calendar."""
        if self.sla is None:
            return {}
        states = {}
        for target in TARGETS:
            minutes = self.sla.minutes.get(target)
            if minutes is None:
                continue
            running = segments(target, self.opened_at, self.status_log, self.first_response_at)
            states[target] = measure(
                target,
                minutes,
                running,
                clock_of(target, running, self.status),
                calendar,
                now,
                breached=target in self.breached,
            )
        return states


def fold(events: Iterable[tuple[DomainEvent, datetime]]) -> Ticket | None:
    """The ticket, or None when the stream is no ticket's (empty, or another kind of
    stream of the tenant, such as an SLA policy's, asked for by its id)."""
    state: Ticket | None = None
    for event, at in events:
        if state is None and not isinstance(event, TicketOpened):
            return None
        state = evolve(state, event, at)
    return state


def evolve(state: Ticket | None, event: DomainEvent, at: datetime) -> Ticket:
    if isinstance(event, TicketOpened):
        return Ticket(
            id=event.ticket_id,
            customer_id=event.customer_id,
            category=event.category,
            priority=event.priority,
            status="open",
            opened_at=at,
            status_log=((at, "open"),),
            version=1,
        )
    if state is None:
        raise ValueError(f"{type(event).__name__} before TicketOpened")
    state = replace(state, version=state.version + 1)
    match event:
        case SlaPolicyApplied():
            minutes: dict[SlaTarget, int] = {}
            if event.first_response_minutes is not None:
                minutes["first_response"] = event.first_response_minutes
            if event.resolution_minutes is not None:
                minutes["resolution"] = event.resolution_minutes
            applied = AppliedSla(
                event.policy, event.policy_version, event.calendar, event.calendar_version, minutes
            )
            return replace(state, sla=applied)
        case TicketAssigned():
            return replace(state, assignee_id=event.assignee_id, group=event.group)
        case TicketReplied(first_response=True):
            return replace(state, first_response_at=at)
        case TicketStatusChanged():
            return _status(state, event.to_status, at)
        case TicketReopened():
            return replace(_status(state, "open", at), satisfied_since_reopened=False)
        case TicketPriorityChanged():
            return replace(state, priority=event.to_priority)
        case SlaBreached():
            return replace(state, breached=state.breached | {event.target})
        case TicketEscalated():
            return replace(state, escalated=state.escalated | {(event.rule, event.target)})
        case FollowUpVisitRecorded():
            return replace(
                state,
                satisfied_since_reopened=event.satisfied,
                visits=state.visits | {event.visit_id},
            )
        case TicketCustomerChanged():
            return replace(state, customer_id=event.customer_id)
        case _:  # replies that are not the first response: no state
            return state


def _status(state: Ticket, status: Status, at: datetime) -> Ticket:
    return replace(
        state,
        status=status,
        status_log=(*state.status_log, (at, status)),
        solved_at=at if status == "solved" else state.solved_at,
    )


def existing(ticket: Ticket | None, ticket_id: str) -> Ticket:
    if ticket is None:
        raise TicketNotFound(ticket_id)
    return ticket


def next_due(t: Ticket, calendar: BusinessCalendar, now: datetime) -> datetime | None:
    """The earliest due time of a target not yet recorded as breached: when the
    scheduler must look at this ticket again (None: no clock can breach now)."""
    if t.status == "closed":
        return None
    dues = [
        s.due_at
        for target, s in t.sla_states(calendar, now).items()
        if target not in t.breached and s.due_at is not None
    ]
    return min(dues) if dues else None
