"""What every tickets use case shares: its dependencies, the stream helpers, retries.

Every command reads a stream, folds it, asks the pure domain for new events at ``now``
from the injected clock, then appends them at the version read, with this service's
read-model rows and the outbox, in one transaction. Without If-Match a race is decided
again on fresher state (a few times, then 409); with If-Match another version is a 412.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine

from libs.events import metrics
from libs.events.catalog import DomainEvent
from libs.events.catalog.tickets import catalog
from libs.events.store import ConcurrencyConflict, EventStore, NewEvent, RecordedEvent
from libs.platform.app import current_correlation_id
from libs.platform.errors import Conflict, PreconditionFailed
from services.tickets.domain.calendar import BusinessCalendar
from services.tickets.read_model.known_customers import CustomerDirectory

SERVICE = "tickets"
SOURCE = "/crm/tickets"
ATTEMPTS = 10
T = TypeVar("T")


class StaleVersion(PreconditionFailed):
    def __init__(self, stream: str, expected: int, current: int | None = None) -> None:
        if current is None:  # lost a race at append time: only "moved on" is known
            super().__init__(f"{stream} changed since version {expected}")
        else:
            super().__init__(
                f"{stream} is at version {current}, not {expected}", current_version=current
            )


class Busy(Conflict):
    def __init__(self, stream: str) -> None:
        super().__init__(f"{stream} changed concurrently; try again")


@dataclass
class Tickets:
    """What the use cases need, wired once by ``app.create_app`` (tests wire their own)."""

    store: EventStore
    directory: CustomerDirectory
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    on_append: Callable[[], None] = field(default=lambda: None)
    # Calendar versions never change once written: (tenant, name, version) -> calendar.
    calendars: dict[tuple[str, str, int], BusinessCalendar] = field(default_factory=dict)

    @property
    def engine(self) -> AsyncEngine:
        return self.store.engine

    def appended(self, count: int) -> None:
        if count:
            metrics.EVENTS_APPENDED.labels(SERVICE).inc(count)
            self.on_append()


def new_events(events: Sequence[DomainEvent], partition_key: str, now: datetime) -> list[NewEvent]:
    correlation_id = current_correlation_id()
    return [
        NewEvent.from_domain(
            e, partition_key=partition_key, occurred_at=now, correlation_id=correlation_id
        )
        for e in events
    ]


def timed(recorded: Sequence[RecordedEvent]) -> list[tuple[DomainEvent, datetime]]:
    """The stream's events with the time each happened (SLA clocks need both)."""
    return [(catalog.decode(e.type, e.data), e.occurred_at) for e in recorded]


async def retrying(stream: str, expected: int | None, attempt: Callable[[], Awaitable[T]]) -> T:
    for _ in range(ATTEMPTS):
        try:
            return await attempt()
        except ConcurrencyConflict:
            if expected is not None:
                raise StaleVersion(stream, expected) from None
    raise Busy(stream)
