"""The service's running work: the projector that reacts to other services' events,
and the lag monitor every view quotes.

``LiveProjection`` follows a rebuild's swap; :class:`Projector` adds what the status
endpoint shows of it (the service runtime restarts it with backoff after a failure,
and records that in its ``supervision``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from libs.events import metrics
from libs.events.kafka import KafkaSettings
from libs.events.projection import (
    LiveProjection,
    ProjectionStatus,
    projection_status,
)
from libs.platform.background import Supervision
from services.customer360.domain.sources import SOURCES, catalog_of
from services.customer360.domain.view import Source
from services.customer360.read_model.reader import Customer360Reader, ProjectionLag
from services.customer360.read_model.writer import Customer360Projection

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ProjectorState:
    running: bool
    generation: int | None
    restarts: int
    last_error: str | None


class Projector:
    def __init__(
        self,
        engine: AsyncEngine,
        kafka: KafkaSettings,
        *,
        sources: Sequence[Source] = SOURCES,
        generation_check_seconds: float = 1.0,
    ) -> None:
        self.sources = tuple(sources)
        self.live = LiveProjection(
            self.factory,
            engine,
            kafka,
            catalog_of(self.sources),
            generation_check_seconds=generation_check_seconds,
        )
        self.supervision = Supervision()

    def factory(self, generation: int) -> Customer360Projection:
        return Customer360Projection(generation, self.sources)

    def state(self) -> ProjectorState:
        runner = self.live.runner
        return ProjectorState(
            running=self.supervision.running,
            generation=runner.projection.generation if runner is not None else None,
            restarts=self.supervision.restarts,
            last_error=self.supervision.last_error,
        )


# --- lag -----------------------------------------------------------------------------


class LagMonitor:
    """Measures the projection's lag every few seconds, for every view to quote."""

    def __init__(
        self,
        engine: AsyncEngine,
        kafka: KafkaSettings,
        reader: Customer360Reader,
        *,
        refresh_seconds: float = 2.0,
    ) -> None:
        self.engine = engine
        self.kafka = kafka
        self.reader = reader
        self.refresh_seconds = refresh_seconds
        self.latest: ProjectionStatus | None = None
        self.measured_at: datetime | None = None

    async def measure(self) -> ProjectionStatus:
        projection = await self.reader.projection()
        status = await projection_status(self.engine, self.kafka, projection)
        self.latest, self.measured_at = status, datetime.now(UTC)
        metrics.PROJECTION_STALLED.labels(projection.name).set(1 if status.stalled else 0)
        return status

    async def measure_once(self) -> None:
        try:
            await asyncio.wait_for(self.measure(), timeout=max(self.refresh_seconds, 5.0))
        except Exception as exc:
            # The view stays readable while the broker is away; its lag goes stale.
            log.warning("customer360: lag not measured: %s", exc)

    def lag(self, generation: int) -> ProjectionLag:
        status = self.latest
        if status is None or status.generation != generation:
            return ProjectionLag(
                generation=generation, lag_events=None, lag_seconds=None, measured_at=None
            )
        return ProjectionLag(
            generation=generation,
            lag_events=status.lag_events,
            lag_seconds=round(status.lag_seconds, 3),
            stalled=status.stalled,
            measured_at=self.measured_at,
        )


async def status_of(
    engine: AsyncEngine, kafka: KafkaSettings, reader: Customer360Reader
) -> ProjectionStatus:
    """The projection's lag, measured now (for ops; views quote the monitor's)."""
    return await projection_status(engine, kafka, await reader.projection())
