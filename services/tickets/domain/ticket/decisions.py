"""What a command does to a ticket: ``decide(command, ticket, now) -> events`` (pure),
a dispatch to one small rule per command; ``decide_open`` for a new ticket."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from libs.events.catalog import DomainEvent
from libs.events.catalog.tickets import (
    FollowUpVisitRecorded,
    Priority,
    SlaBreached,
    SlaPolicyApplied,
    SlaTarget,
    Status,
    TicketAssigned,
    TicketOpened,
    TicketPriorityChanged,
    TicketReopened,
    TicketReplied,
    TicketStatusChanged,
)
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
from services.tickets.domain.ticket.errors import (
    FollowUpVisitMissing,
    NoBreach,
    NotReopenable,
    NotSolvedYet,
    TicketClosed,
    VisitInTheFuture,
)
from services.tickets.domain.ticket.state import AppliedSla, Ticket


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
    match c:
        case AssignTicket():
            return _assign(t, c)
        case ReplyToTicket():
            return _reply(t, c)
        case ChangeStatus():
            return _change_status(t, c.status, c.by)
        case ReopenTicket():
            return _reopen(t, c)
        case ChangePriority():
            return _change_priority(t, c, sla)
        case RecordFollowUpVisit():
            return _follow_up_visit(t, c, now)
        case RecordBreach():
            return _breach(t, c.target, calendar, now)
    raise TypeError(f"unknown command {type(c).__name__}")


def _ids(t: Ticket) -> dict[str, Any]:
    # Every ticket event names its ticket and the customer it is about.
    return {"ticket_id": t.id, "customer_id": t.customer_id}


def _assign(t: Ticket, c: AssignTicket) -> list[DomainEvent]:
    if (c.assignee_id, c.group) == (t.assignee_id, t.group):
        return []
    return [
        TicketAssigned(
            **_ids(t),
            assignee_id=c.assignee_id,
            group=c.group,
            previous_assignee_id=t.assignee_id,
            by=c.by,
            rule=c.rule,
        )
    ]


def _reply(t: Ticket, c: ReplyToTicket) -> list[DomainEvent]:
    # The first public reply stops the first-response clock.
    first = c.public and t.first_response_at is None
    return [
        TicketReplied(
            **_ids(t),
            reply_id=f"{t.id}-{t.version + 1}",
            public=c.public,
            body=c.body,
            by=c.by,
            first_response=first,
        )
    ]


def _reopen(t: Ticket, c: ReopenTicket) -> list[DomainEvent]:
    if t.status != "solved":
        raise NotReopenable(t.id, t.status)
    return [TicketReopened(**_ids(t), from_status=t.status, by=c.by, reason=c.reason)]


def _change_priority(t: Ticket, c: ChangePriority, sla: AppliedSla | None) -> list[DomainEvent]:
    if c.priority == t.priority:
        return []
    changed: list[DomainEvent] = [
        TicketPriorityChanged(
            **_ids(t), from_priority=t.priority, to_priority=c.priority, by=c.by, rule=c.rule
        )
    ]
    # A new priority may come with new targets from the ticket's policy.
    if sla is not None:
        changed.append(applied(t.id, t.customer_id, c.priority, sla))
    return changed


def _follow_up_visit(t: Ticket, c: RecordFollowUpVisit, now: datetime) -> list[DomainEvent]:
    if c.visit_id in t.visits:  # a retried request: recorded already
        return []
    if c.visited_at > now:
        raise VisitInTheFuture()
    visit: list[DomainEvent] = [
        FollowUpVisitRecorded(
            **_ids(t),
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
                **_ids(t),
                from_status=t.status,
                by=c.by,
                reason="customer unsatisfied at the follow-up visit",
            )
        )
    return visit


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
