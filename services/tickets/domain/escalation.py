"""Escalation: when a target is breached, or a set time before, reassign or raise priority.

Each (rule, target) fires at most once per ticket: firing is a ``TicketEscalated``
event in the ticket's stream, so the same exactly-once argument as for breaches holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from libs.events.catalog import DomainEvent
from libs.events.catalog.tickets import (
    EscalationRule,
    Priority,
    TicketAssigned,
    TicketEscalated,
    TicketPriorityChanged,
)
from services.tickets.domain.calendar import BusinessCalendar
from services.tickets.domain.ticket import AppliedSla, Ticket, applied, next_due

PRIORITIES: tuple[Priority, ...] = ("low", "normal", "high", "urgent")


def fires_at(
    rule: EscalationRule, ticket: Ticket, calendar: BusinessCalendar, now: datetime
) -> datetime | None:
    """When ``rule`` fires for ``ticket`` (None: it does not apply, or fired already)."""
    if ticket.status == "closed" or (rule.name, rule.target) in ticket.escalated:
        return None
    if rule.priorities and ticket.priority not in rule.priorities:
        return None
    state = ticket.sla_states(calendar, now).get(rule.target)
    if state is None or state.due_at is None:
        return None
    if state.clock != "running" and state.outcome != "breached":
        return None  # met, or paused: nothing is about to be missed
    return state.due_at - timedelta(minutes=rule.minutes_before)


def next_escalation(
    rules: Sequence[EscalationRule], ticket: Ticket, calendar: BusinessCalendar, now: datetime
) -> datetime | None:
    times = [t for r in rules if (t := fires_at(r, ticket, calendar, now)) is not None]
    return min(times) if times else None


def next_look(
    ticket: Ticket, calendar: BusinessCalendar, now: datetime, rules: Sequence[EscalationRule] = ()
) -> datetime | None:
    """When the SLA scheduler must look at the ticket again: its next breach or escalation."""
    times = [
        t
        for t in (next_due(ticket, calendar, now), next_escalation(rules, ticket, calendar, now))
        if t
    ]
    return min(times) if times else None


def escalate(
    rule: EscalationRule,
    ticket: Ticket,
    calendar: BusinessCalendar,
    now: datetime,
    sla_for: AppliedSla | None = None,
) -> list[DomainEvent]:
    """The rule's actions, if it is due; none otherwise. ``sla_for``: the targets of the
    raised priority (the handler looks them up in the ticket's policy)."""
    at = fires_at(rule, ticket, calendar, now)
    if at is None or at > now:
        return []
    ids = {"ticket_id": ticket.id, "customer_id": ticket.customer_id}
    actions: list[DomainEvent] = []
    if (rule.assign_to or rule.group) and (rule.assign_to, rule.group) != (
        ticket.assignee_id,
        ticket.group,
    ):
        actions.append(
            TicketAssigned(
                **ids,
                assignee_id=rule.assign_to,
                group=rule.group or ticket.group,
                previous_assignee_id=ticket.assignee_id,
                by="escalation",
                rule=rule.name,
            )
        )
    raised = raise_priority(ticket.priority)
    if rule.raise_priority and raised != ticket.priority:
        actions.append(
            TicketPriorityChanged(
                **ids,
                from_priority=ticket.priority,
                to_priority=raised,
                by="escalation",
                rule=rule.name,
            )
        )
        if sla_for is not None:
            actions.append(applied(ticket.id, ticket.customer_id, raised, sla_for))
    trigger = "breached" if rule.minutes_before == 0 else f"{rule.minutes_before} minutes before"
    names = [type(a).__name__ for a in actions if not a.type_name.endswith("sla_policy_applied.v1")]
    return [
        TicketEscalated(**ids, rule=rule.name, target=rule.target, trigger=trigger, actions=names),
        *actions,
    ]


def raise_priority(priority: Priority) -> Priority:
    return PRIORITIES[min(PRIORITIES.index(priority) + 1, len(PRIORITIES) - 1)]
