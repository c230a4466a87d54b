"""What every analytics use case shares: the wiring (``Analytics``), the generation of
the tables that serves, and the population a figure is computed over."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from libs.events.checkpoints import generations
from libs.events.write_path import HandlerContext
from services.analytics.read_model.tables import NAME, Tables

SERVICE = "analytics"


@dataclass
class Analytics(HandlerContext):
    """What the handlers need, wired once by ``app.create_app`` (tests wire their own)."""

    service: ClassVar[str] = SERVICE

    _tables: dict[int, Tables] = field(default_factory=dict)

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
