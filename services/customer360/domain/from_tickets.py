"""What the tickets service's events do to the 360 view (``crm.tickets.events``).

The service section: the customer's tickets until they are closed (a solved ticket
can still be reopened, and a solved complaint waits for its follow-up visit), each
with its status, priority, category and whether an SLA target was missed; the
breaches; the last CSAT and NPS answers; a timeline line for each of these events.
Tenant-level events (SLA policies, calendars, rules) name no customer: not applied.

Subjects, replies, visit outcomes, survey comments and reopening reasons are free
text that may name the person (the catalog's ``PERSONAL_DATA`` declares what the
customer wrote): the redacted timeline line leaves them out, and an erasure blanks
the subjects and comments in the section. Decision 30 says where the section stops.
"""

from __future__ import annotations

from typing import Any

from libs.events.catalog.tickets import (
    CsatAnswered,
    FollowUpVisitRecorded,
    NpsAnswered,
    SlaBreached,
    SurveySent,
    TicketAssigned,
    TicketCustomerChanged,
    TicketEscalated,
    TicketOpened,
    TicketPriorityChanged,
    TicketReopened,
    TicketReplied,
    TicketStatusChanged,
    catalog,
)
from libs.events.kafka import service_topic
from services.customer360.domain.sections import (
    patch,
    put,
    utc_iso,
    with_sections,
    without,
)
from services.customer360.domain.view import CustomerView, Fact, Outcome, Source, empty_service

TICKETS = Source("tickets", service_topic("tickets"), catalog)

# The breaches listed (all are counted): the most recent by due time.
RECENT_BREACHES = 20


def _service(view: CustomerView) -> dict[str, Any]:
    return dict(view.sections.get("service") or empty_service())


def _with(line: str, text: str) -> str:
    return f"{line}: {text}" if text else line


# --- tickets -------------------------------------------------------------------------


@TICKETS.on(TicketOpened)
def ticket_opened(view: CustomerView, event: TicketOpened, fact: Fact) -> Outcome:
    ticket: dict[str, Any] = {
        "ticket_id": event.ticket_id,
        "subject": "" if view.erased else event.subject,
        "status": "open",
        "priority": event.priority,
        "category": event.category,
        "channel": event.channel,
        "assignee_id": None,
        "group": None,
        "sla_breached": False,
        "breached_targets": [],
        "follow_up_satisfied": None,
        "csat": None,
        "opened_at": utc_iso(fact.time),
    }
    tickets = put(view.sections["tickets"], "ticket_id", ticket, order_by="opened_at")
    kind = "Complaint" if event.category == "complaint" else "Ticket"
    line = f"{kind} {event.ticket_id} opened ({event.priority}, {event.channel})"
    return Outcome(
        with_sections(view, tickets=tickets), fact.entry(_with(line, event.subject), line)
    )


@TICKETS.on(TicketAssigned)
def ticket_assigned(view: CustomerView, event: TicketAssigned, fact: Fact) -> Outcome:
    tickets = patch(
        view.sections["tickets"],
        "ticket_id",
        event.ticket_id,
        assignee_id=event.assignee_id,
        group=event.group,
    )
    to = event.assignee_id or event.group
    line = (
        f"Ticket {event.ticket_id} assigned to {to}"
        if to
        else f"Ticket {event.ticket_id} unassigned"
    )
    return Outcome(with_sections(view, tickets=tickets), fact.entry(line))


@TICKETS.on(TicketReplied)
def ticket_replied(view: CustomerView, event: TicketReplied, fact: Fact) -> Outcome:
    kind = "Reply" if event.public else "Internal note"
    line = f"{kind} on ticket {event.ticket_id} by {event.by}"
    return Outcome(view, fact.entry(_with(line, event.body), line))


@TICKETS.on(TicketStatusChanged)
def ticket_status_changed(view: CustomerView, event: TicketStatusChanged, fact: Fact) -> Outcome:
    if event.to_status == "closed":
        # Closed is final: the ticket leaves the section, its lines stay on the timeline.
        tickets = without(view.sections["tickets"], "ticket_id", event.ticket_id)
    else:
        tickets = patch(
            view.sections["tickets"], "ticket_id", event.ticket_id, status=event.to_status
        )
    line = f"Ticket {event.ticket_id} {event.from_status} -> {event.to_status} by {event.by}"
    return Outcome(with_sections(view, tickets=tickets), fact.entry(line))


@TICKETS.on(TicketPriorityChanged)
def ticket_priority_changed(
    view: CustomerView, event: TicketPriorityChanged, fact: Fact
) -> Outcome:
    tickets = patch(
        view.sections["tickets"], "ticket_id", event.ticket_id, priority=event.to_priority
    )
    line = f"Ticket {event.ticket_id} priority {event.from_priority} -> {event.to_priority}"
    return Outcome(with_sections(view, tickets=tickets), fact.entry(line))


@TICKETS.on(TicketReopened)
def ticket_reopened(view: CustomerView, event: TicketReopened, fact: Fact) -> Outcome:
    tickets = patch(view.sections["tickets"], "ticket_id", event.ticket_id, status="open")
    line = f"Ticket {event.ticket_id} reopened by {event.by}"
    return Outcome(
        with_sections(view, tickets=tickets), fact.entry(_with(line, event.reason), line)
    )


@TICKETS.on(SlaBreached)
def sla_breached(view: CustomerView, event: SlaBreached, fact: Fact) -> Outcome:
    target = event.target
    tickets = [
        {
            **t,
            "sla_breached": True,
            "breached_targets": sorted({*t["breached_targets"], target}),
        }
        if t["ticket_id"] == event.ticket_id
        else t
        for t in view.sections["tickets"]
    ]
    breach = {
        "ticket_id": event.ticket_id,
        "target": target,
        "priority": event.priority,
        "due_at": utc_iso(event.due_at),
    }
    service = _service(view)
    recent = _breaches(service["recent_breaches"], breach)
    service.update(breaches=service["breaches"] + 1, recent_breaches=recent)
    line = (
        f"SLA breached on ticket {event.ticket_id}: {target.replace('_', ' ')} "
        f"was due {event.due_at.isoformat()} ({event.priority})"
    )
    return Outcome(
        with_sections(view, tickets=tickets, service=service),
        fact.entry(line, happened_at=event.due_at),
    )


def _breaches(recent: list[dict[str, Any]], breach: dict[str, Any]) -> list[dict[str, Any]]:
    """``recent`` plus ``breach`` (a ticket misses each target once), newest due first."""
    same = (breach["ticket_id"], breach["target"])
    kept = [b for b in recent if (b["ticket_id"], b["target"]) != same]
    kept.append(breach)
    kept.sort(key=lambda b: (b["due_at"], b["ticket_id"]), reverse=True)
    return kept[:RECENT_BREACHES]


@TICKETS.on(TicketEscalated)
def ticket_escalated(view: CustomerView, event: TicketEscalated, fact: Fact) -> Outcome:
    actions = ", ".join(event.actions) or "no action"
    line = f"Ticket {event.ticket_id} escalated by rule {event.rule} ({event.trigger}): {actions}"
    return Outcome(view, fact.entry(line))


@TICKETS.on(FollowUpVisitRecorded)
def follow_up_visit_recorded(
    view: CustomerView, event: FollowUpVisitRecorded, fact: Fact
) -> Outcome:
    tickets = patch(
        view.sections["tickets"], "ticket_id", event.ticket_id, follow_up_satisfied=event.satisfied
    )
    verdict = "satisfied" if event.satisfied else "not satisfied"
    line = f"Follow-up visit on ticket {event.ticket_id} by {event.visited_by}: {verdict}"
    return Outcome(
        with_sections(view, tickets=tickets),
        fact.entry(_with(line, event.outcome), line, happened_at=event.visited_at),
    )


@TICKETS.on(TicketCustomerChanged)
def ticket_customer_changed(
    view: CustomerView, event: TicketCustomerChanged, fact: Fact
) -> Outcome:
    # Applied to the survivor. The ticket's item stays in the duplicate's row
    # (decision 30): the event says which customer, not what the ticket is.
    line = f"Ticket {event.ticket_id} moved here from {event.previous_customer_id} (merge)"
    return Outcome(view, fact.entry(line))


# --- surveys -------------------------------------------------------------------------


@TICKETS.on(SurveySent)
def survey_sent(view: CustomerView, event: SurveySent, fact: Fact) -> Outcome:
    about = f" about ticket {event.ticket_id}" if event.ticket_id else ""
    line = f"{event.kind.upper()} survey sent{about}, expires {event.expires_at.isoformat()}"
    return Outcome(view, fact.entry(line))


@TICKETS.on(CsatAnswered)
def csat_answered(view: CustomerView, event: CsatAnswered, fact: Fact) -> Outcome:
    answer = {
        "survey_id": event.survey_id,
        "ticket_id": event.ticket_id,
        "score": event.score,
        "satisfied": event.satisfied,
        "comment": "" if view.erased else event.comment,
        "answered_at": utc_iso(fact.time),
    }
    service = _service(view)
    if _newer(service["last_csat"], answer):
        service["last_csat"] = answer
    tickets = patch(view.sections["tickets"], "ticket_id", event.ticket_id, csat=event.score)
    line = f"CSAT {event.score}/5 for ticket {event.ticket_id}"
    return Outcome(
        with_sections(view, tickets=tickets, service=service),
        fact.entry(_with(line, event.comment), line),
    )


@TICKETS.on(NpsAnswered)
def nps_answered(view: CustomerView, event: NpsAnswered, fact: Fact) -> Outcome:
    answer = {
        "survey_id": event.survey_id,
        "score": event.score,
        "group": event.group,
        "comment": "" if view.erased else event.comment,
        "answered_at": utc_iso(fact.time),
    }
    service = _service(view)
    if _newer(service["last_nps"], answer):
        service["last_nps"] = answer
    line = f"NPS {event.score}/10 ({event.group})"
    return Outcome(
        with_sections(view, service=service), fact.entry(_with(line, event.comment), line)
    )


def _newer(current: dict[str, Any] | None, answer: dict[str, Any]) -> bool:
    # Surveys are separate streams: the answer given last wins, whatever arrives last.
    return current is None or answer["answered_at"] >= current["answered_at"]
