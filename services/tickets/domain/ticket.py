"""The Ticket aggregate: ``decide(command, ticket, now) -> events``; ``evolve`` folds them.

A ticket's state keeps the times its SLA clocks need (when it was opened, first
answered, and every status it went through), so the clocks are a pure function of
the stream (``sla.py``). Rules:

* a closed ticket is final: nothing changes it any more;
* only a solved ticket can be closed, and a complaint only once a follow-up visit
  (回访) since it was last (re)opened found the customer satisfied;
* a follow-up visit that finds the customer unsatisfied reopens a solved ticket.
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
from libs.platform.errors import Conflict, NotFound, Unprocessable
from services.tickets.commands import (
    AssignTicket,
    ChangePriority,
    ChangeStatus,
    OpenTicket,
    RecordBreach,
    RecordFollowUpVisit,
    ReopenTicket,
    ReplyToTicket,
    TicketCommand,
)
from services.tickets.domain.calendar import BusinessCalendar
from services.tickets.domain.sla import TARGETS, SlaState, clock_of, measure, segments


class TicketNotFound(NotFound):
    def __init__(self, ticket_id: str) -> None:
        super().__init__(f"ticket {ticket_id} not found", ticket_id=ticket_id)


class TicketClosed(Conflict):
    def __init__(self, ticket_id: str) -> None:
        super().__init__(f"ticket {ticket_id} is closed; open a new one", ticket_id=ticket_id)


class NotSolvedYet(Conflict):
    def __init__(self, ticket_id: str, status: str) -> None:
        super().__init__(
            f"ticket {ticket_id} is {status}: only a solved ticket can be closed",
            ticket_id=ticket_id,
            ticket_status=status,
        )


class FollowUpVisitMissing(Conflict):
    """The complaint closed loop: no closing without a satisfied customer."""

    def __init__(self, ticket_id: str) -> None:
        super().__init__(
            f"complaint {ticket_id} cannot be closed before a follow-up visit finds the "
            "customer satisfied",
            ticket_id=ticket_id,
            reason="follow_up_visit_required",
        )


class NotReopenable(Conflict):
    def __init__(self, ticket_id: str, status: str) -> None:
        super().__init__(
            f"ticket {ticket_id} is {status}: only a solved ticket can be reopened",
            ticket_id=ticket_id,
            ticket_status=status,
        )


class NoBreach(Conflict):
    """A breach was asked for a target that is not (yet) missed, or already recorded."""

    def __init__(self, ticket_id: str, target: str) -> None:
        super().__init__(f"{target} of ticket {ticket_id} is not newly breached", target=target)


class VisitInTheFuture(Unprocessable):
    def __init__(self) -> None:
        super().__init__("visited_at", "is in the future")


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


def decide_open(
    command: OpenTicket, ticket_id: str, by: str, sla: AppliedSla | None
) -> list[DomainEvent]:
    events: list[DomainEvent] = [
        TicketOpened(
            ticket_id=ticket_id,
            customer_id=command.customer_id,
            subject=command.subject,
            description=command.description,
            channel=command.channel,
            category=command.category,
            priority=command.priority,
            requester_name=command.requester_name,
            requester_email=command.requester_email,
            requester_phone=command.requester_phone,
            opened_by=by,
        )
    ]
    if sla is not None:
        events.append(applied(ticket_id, command.customer_id, command.priority, sla))
    return events


def applied(ticket_id: str, customer_id: str, priority: Priority, sla: AppliedSla) -> DomainEvent:
    return SlaPolicyApplied(
        ticket_id=ticket_id,
        customer_id=customer_id,
        policy=sla.policy,
        policy_version=sla.policy_version,
        calendar=sla.calendar,
        calendar_version=sla.calendar_version,
        priority=priority,
        first_response_minutes=sla.minutes.get("first_response"),
        resolution_minutes=sla.minutes.get("resolution"),
    )


def decide(
    command: TicketCommand,
    ticket: Ticket,
    now: datetime,
    *,
    sla: AppliedSla | None = None,
    calendar: BusinessCalendar | None = None,
) -> list[DomainEvent]:
    """New events for ``command`` on ``ticket`` (none: it changes nothing).

    ``sla``: the targets the ticket's policy sets for the new priority (ChangePriority);
    ``calendar``: the one its targets are measured in (RecordBreach).
    """
    t, c = ticket, command
    if t.status == "closed":
        raise TicketClosed(t.id)
    ids = {"ticket_id": t.id, "customer_id": t.customer_id}
    match c:
        case AssignTicket():
            if (c.assignee_id, c.group) == (t.assignee_id, t.group):
                return []
            return [
                TicketAssigned(
                    **ids,
                    assignee_id=c.assignee_id,
                    group=c.group,
                    previous_assignee_id=t.assignee_id,
                    by=c.by,
                    rule=c.rule,
                )
            ]
        case ReplyToTicket():
            first = c.public and t.first_response_at is None
            return [
                TicketReplied(
                    **ids,
                    reply_id=f"{t.id}-{t.version + 1}",
                    public=c.public,
                    body=c.body,
                    by=c.by,
                    first_response=first,
                )
            ]
        case ChangeStatus():
            return _change_status(t, c.status, c.by)
        case ReopenTicket():
            if t.status != "solved":
                raise NotReopenable(t.id, t.status)
            return [TicketReopened(**ids, from_status=t.status, by=c.by, reason=c.reason)]
        case ChangePriority():
            if c.priority == t.priority:
                return []
            changed: list[DomainEvent] = [
                TicketPriorityChanged(
                    **ids, from_priority=t.priority, to_priority=c.priority, by=c.by, rule=c.rule
                )
            ]
            if sla is not None:
                changed.append(applied(t.id, t.customer_id, c.priority, sla))
            return changed
        case RecordFollowUpVisit():
            if c.visit_id in t.visits:  # a retried request: recorded already
                return []
            if c.visited_at > now:
                raise VisitInTheFuture()
            visit: list[DomainEvent] = [
                FollowUpVisitRecorded(
                    **ids,
                    visit_id=c.visit_id,
                    visited_by=c.visited_by,
                    visited_at=c.visited_at,
                    outcome=c.outcome,
                    satisfied=c.satisfied,
                )
            ]
            if not c.satisfied and t.status == "solved":
                visit.append(
                    TicketReopened(
                        **ids,
                        from_status=t.status,
                        by=c.by,
                        reason="customer unsatisfied at the follow-up visit",
                    )
                )
            return visit
        case RecordBreach():
            return _breach(t, c.target, calendar, now)
    raise TypeError(f"unknown command {type(c).__name__}")


def _change_status(t: Ticket, to: Status, by: str) -> list[DomainEvent]:
    ids = {"ticket_id": t.id, "customer_id": t.customer_id}
    if to == t.status:
        return []
    if to == "closed":
        if t.status != "solved":
            raise NotSolvedYet(t.id, t.status)
        if t.category == "complaint" and not t.satisfied_since_reopened:
            raise FollowUpVisitMissing(t.id)
    if t.status == "solved" and to in ("open", "pending"):
        # Back to work on a solved ticket is a reopening, whatever the route taken.
        reopened: list[DomainEvent] = [TicketReopened(**ids, from_status=t.status, by=by)]
        if to == "pending":
            reopened.append(TicketStatusChanged(**ids, from_status="open", to_status=to, by=by))
        return reopened
    return [TicketStatusChanged(**ids, from_status=t.status, to_status=to, by=by)]


def _breach(
    t: Ticket, target: SlaTarget, calendar: BusinessCalendar | None, now: datetime
) -> list[DomainEvent]:
    if calendar is None or t.sla is None or target in t.breached:
        raise NoBreach(t.id, target)
    state = t.sla_states(calendar, now).get(target)
    if state is None or state.outcome != "breached" or state.due_at is None:
        raise NoBreach(t.id, target)
    return [
        SlaBreached(
            ticket_id=t.id,
            customer_id=t.customer_id,
            target=target,
            due_at=state.due_at,
            priority=t.priority,
            policy=t.sla.policy,
            assignee_id=t.assignee_id,
        )
    ]


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
