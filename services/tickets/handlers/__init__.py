"""What every tickets use case shares: its dependencies and the stream helpers.

Every command reads a stream, folds it, asks the pure domain for new events at ``now``
from the injected clock, then appends them at the version read, with this service's
read-model rows and the outbox, in one transaction. Without If-Match a race is decided
again on fresher state (a few times, then 409); with If-Match another version is a 412
(the write path of every service: ``libs/events/write_path.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar

from libs.events.catalog import DomainEvent
from libs.events.catalog.tickets import catalog
from libs.events.known_customers import CustomerDirectory
from libs.events.store import RecordedEvent
from libs.events.write_path import HandlerContext
from services.tickets.domain.calendar import BusinessCalendar

SERVICE = "tickets"


@dataclass
class Tickets(HandlerContext):
    """What the use cases need, wired once by ``app.create_app`` (tests wire their own)."""

    service: ClassVar[str] = SERVICE

    directory: CustomerDirectory
    # Calendar versions never change once written: (tenant, name, version) -> calendar.
    calendars: dict[tuple[str, str, int], BusinessCalendar] = field(default_factory=dict)


def timed(recorded: Sequence[RecordedEvent]) -> list[tuple[DomainEvent, datetime]]:
    """The stream's events with the time each happened (SLA clocks need both)."""
    return [(catalog.decode(e.type, e.data), e.occurred_at) for e in recorded]
