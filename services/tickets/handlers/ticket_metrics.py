"""The tickets service's own Prometheus metrics (the event and relay ones are shared)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from prometheus_client import Counter, Gauge, Histogram

from libs.events.catalog import DomainEvent
from libs.events.catalog.tickets import SlaBreached, TicketReplied
from services.tickets.domain.calendar import BusinessCalendar
from services.tickets.domain.ticket import Ticket

OPEN_TICKETS = Gauge(
    "crm_tickets_open", "Tickets open or pending (every tenant), by priority", ["priority"]
)
TICKETS_OPENED = Counter("crm_tickets_opened_total", "Tickets opened", ["category", "priority"])
SLA_BREACHES = Counter("crm_sla_breaches_total", "SLA targets missed", ["target", "priority"])
FIRST_RESPONSE_SECONDS = Histogram(
    "crm_tickets_first_response_business_seconds",
    "Business time from opening to the first public reply",
    buckets=(300, 900, 1800, 3600, 2 * 3600, 4 * 3600, 8 * 3600, 16 * 3600, 40 * 3600),
)
PRIORITIES = ("low", "normal", "high", "urgent")


def opened(ticket: Ticket) -> None:
    TICKETS_OPENED.labels(ticket.category, ticket.priority).inc()


def changed(
    before: Ticket, after: Ticket, events: Sequence[DomainEvent], calendar: BusinessCalendar
) -> None:
    for event in events:
        if isinstance(event, SlaBreached):
            SLA_BREACHES.labels(event.target, event.priority).inc()
        elif isinstance(event, TicketReplied) and event.first_response:
            assert after.first_response_at is not None
            FIRST_RESPONSE_SECONDS.observe(
                calendar.working_time(after.opened_at, after.first_response_at).total_seconds()
            )


def set_open(counts: Mapping[str, int]) -> None:
    for priority in PRIORITIES:
        OPEN_TICKETS.labels(priority).set(counts.get(priority, 0))
