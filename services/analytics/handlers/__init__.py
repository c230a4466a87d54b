"""What every analytics use case shares: the wiring (``Analytics``), the generation of
the tables that serves, and the population a figure is computed over."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from libs.events import metrics as event_metrics
from libs.events.checkpoints import generations
from libs.events.store import EventStore
from services.analytics.read_model.tables import NAME, Tables

SERVICE = "analytics"
SOURCE = "/crm/analytics"


@dataclass
class Analytics:
    """What the handlers need, wired once by ``app.create_app`` (tests wire their own)."""

    store: EventStore
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    # Called after appending events (the relay's wake-up).
    on_append: Callable[[], None] = field(default=lambda: None)
    _tables: dict[int, Tables] = field(default_factory=dict)

    @property
    def engine(self) -> AsyncEngine:
        return self.store.engine

    def appended(self, count: int) -> None:
        if count:
            event_metrics.EVENTS_APPENDED.labels(SERVICE).inc(count)
            self.on_append()

    async def tables(self, conn: AsyncConnection) -> Tables:
        """The generation that serves now (a rebuild swaps it in one update)."""
        active = await conn.scalar(
            select(generations.c.active).where(generations.c.projection == NAME)
        )
        generation = int(active) if active is not None else 1
        if generation not in self._tables:
            self._tables[generation] = Tables.of(generation)
        return self._tables[generation]


@dataclass(frozen=True, slots=True)
class Window:
    """What every figure takes: the window ``[start, end]`` (business time), the time
    the figure is computed as of, and the segment it is restricted to."""

    start: datetime | None
    end: datetime
    as_of: datetime
    segment: str | None = None

    @property
    def until(self) -> datetime:
        """The window's end as known at ``as_of`` (nothing later had happened)."""
        return min(self.end, self.as_of)
