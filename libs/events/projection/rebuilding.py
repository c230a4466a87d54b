"""A projection rebuilt from the earliest offsets, swapped in only if fit to serve."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from libs.events.catalog import EventCatalog
from libs.events.kafka import KafkaSettings
from libs.events.lag import end_offsets
from libs.events.projection.runner import ProjectionRunner
from libs.events.projection.serving import (
    ProjectionFactory,
    activate_generation,
    active_generation,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RebuildProgress:
    projection: str
    generation: int
    # Messages read so far, of those there were when the rebuild started.
    read: int
    target: int
    dead_lettered: int
    elapsed_seconds: float

    def __str__(self) -> str:
        share = 100.0 * self.read / self.target if self.target else 100.0
        return (
            f"{self.projection} generation {self.generation}: {self.read}/{self.target} "
            f"messages ({share:.0f} %), {self.dead_lettered} dead-lettered, "
            f"{self.elapsed_seconds:.0f} s"
        )


class RebuildRefused(Exception):
    """The new generation is not fit to serve; the old one stays active."""

    def __init__(self, progress: RebuildProgress, reasons: Sequence[str]) -> None:
        self.progress = progress
        self.reasons = list(reasons)
        super().__init__(
            f"{progress.projection}: generation {progress.generation} not activated: "
            + "; ".join(self.reasons)
        )


def _log_progress(progress: RebuildProgress) -> None:
    log.info("rebuilding %s", progress)


async def rebuild(
    factory: ProjectionFactory,
    engine: AsyncEngine,
    kafka: KafkaSettings,
    catalog: EventCatalog,
    *,
    timeout_seconds: float = 600.0,
    on_progress: Callable[[RebuildProgress], None] = _log_progress,
    progress_every_seconds: float = 5.0,
) -> int:
    """Fill a new generation from the earliest offset, then make it the active one.

    The old generation keeps serving until the new one has caught up with the
    end of every partition as it was when the rebuild started. The new one is
    not activated (:class:`RebuildRefused`) if it dead-lettered any event or
    holds fewer entities than the active one (:meth:`Projection.count_for_rebuild`).
    """
    name = factory(1).name
    current = await active_generation(engine, name) or 0
    projection = factory(current + 1)
    targets = await end_offsets(kafka, projection.topics)
    # Applies link to each event's trace: a rebuild is not part of the original action.
    runner = ProjectionRunner(projection, engine, kafka, catalog, replaying=True)
    started = asyncio.get_running_loop().time()

    def progress() -> RebuildProgress:
        return RebuildProgress(
            name,
            projection.generation,
            sum(min(runner.progress.get(tp, 0), end) for tp, end in targets.items()),
            sum(targets.values()),
            runner.consumer.dead_lettered if runner.consumer is not None else 0,
            asyncio.get_running_loop().time() - started,
        )

    def caught_up() -> bool:
        return all(runner.progress.get(tp, 0) >= end for tp, end in targets.items() if end > 0)

    async def report_every_few_seconds() -> None:
        while True:
            await asyncio.sleep(progress_every_seconds)
            on_progress(progress())

    stop = asyncio.Event()
    reporter = asyncio.create_task(report_every_few_seconds())
    try:
        if not caught_up():
            await asyncio.wait_for(runner.run(stop, until=caught_up), timeout=timeout_seconds)
        else:
            await runner.create_tables()
    finally:
        reporter.cancel()
    done = progress()
    on_progress(done)
    reasons = []
    if done.dead_lettered:
        reasons.append(f"{done.dead_lettered} events were dead-lettered while rebuilding")
    async with engine.connect() as conn:
        rebuilt = await projection.count_for_rebuild(conn)
        serving = await factory(current).count_for_rebuild(conn) if current else None
    if rebuilt is not None and serving is not None and rebuilt < serving:
        reasons.append(f"it holds {rebuilt} where generation {current} holds {serving}")
    if reasons:
        refused = RebuildRefused(done, reasons)
        log.error("%s", refused)
        raise refused
    await activate_generation(engine, name, projection.generation)
    log.info("projection %s: generation %d is now active", name, projection.generation)
    return projection.generation
