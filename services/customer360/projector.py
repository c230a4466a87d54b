"""The projector as a background task of the service: it keeps running, or says why not.

``LiveProjection`` follows a rebuild's swap; this wrapper adds what a process
that also serves HTTP needs: a failure (broker unreachable at start, a database
restart) is logged, shown in the status endpoint and retried with backoff,
instead of silently ending the task while the API keeps serving stale views.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from libs.events.kafka import KafkaSettings
from libs.events.projection import LiveProjection, ProjectionRunner
from services.customer360.projection import Customer360Projection
from services.customer360.sources import SOURCES, catalog_of
from services.customer360.view import Source

log = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 30.0


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
        self.restarts = 0
        self.last_error: str | None = None
        self._running = False

    def factory(self, generation: int) -> Customer360Projection:
        return Customer360Projection(generation, self.sources)

    async def prepare(self) -> Customer360Projection:
        """Make the active generation's tables exist before anything reads them."""
        projection = await self.live.current()
        runner = ProjectionRunner(projection, self.live.engine, self.live.kafka, self.live.catalog)
        await runner.create_tables()
        assert isinstance(projection, Customer360Projection)
        return projection

    async def run(self, stop: asyncio.Event) -> None:
        backoff = 0.5
        while not stop.is_set():
            self._running = True
            started = asyncio.get_running_loop().time()
            try:
                await self.live.run(stop)
            except Exception as exc:
                if asyncio.get_running_loop().time() - started > MAX_BACKOFF_SECONDS:
                    backoff = 0.5  # it ran fine for a while: this is a new failure
                self.restarts += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("customer360 projector failed; restarting in %.1fs", backoff)
                self._running = False
                try:
                    await asyncio.wait_for(stop.wait(), timeout=backoff)
                except TimeoutError:
                    pass
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
            finally:
                self._running = False

    def state(self) -> ProjectorState:
        runner = self.live.runner
        return ProjectorState(
            running=self._running,
            generation=runner.projection.generation if runner is not None else None,
            restarts=self.restarts,
            last_error=self.last_error,
        )
