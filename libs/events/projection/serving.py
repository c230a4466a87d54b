"""Which generation of a projection serves, and a service that follows a swap.

A rebuild (``rebuilding.py``) fills generation N+1 while N keeps serving, then makes
N+1 the active one in one update; ``LiveProjection`` notices and moves over.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import inspect, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from libs.events import readiness
from libs.events.catalog import EventCatalog
from libs.events.checkpoints import generations, runtime_metadata
from libs.events.kafka import KafkaSettings
from libs.events.projection.runner import Projection, ProjectionRunner
from libs.platform.db import snapshot_reads, upsert_for

log = logging.getLogger(__name__)


async def active_generation(engine: AsyncEngine, name: str) -> int | None:
    """The generation serving ``name``; None before any was activated. A snapshot read:
    on SQLite it never waits for the write lock a rebuild's batches hold (a look that
    waited past the busy timeout failed, and the ops report with it)."""
    async with snapshot_reads(engine).connect() as conn:
        if not await conn.run_sync(lambda sync: inspect(sync).has_table(generations.name)):
            return None  # activate_generation creates the table
        value = await conn.scalar(
            select(generations.c.active).where(generations.c.projection == name)
        )
        return int(value) if value is not None else None


async def activate_generation(engine: AsyncEngine, name: str, generation: int) -> None:
    now = datetime.now(UTC)
    async with engine.begin() as conn:
        await conn.run_sync(runtime_metadata.create_all)
        changed = await conn.execute(
            update(generations)
            .where(generations.c.projection == name)
            .values(active=generation, updated_at=now)
        )
        if changed.rowcount == 0:
            insert = upsert_for(engine)
            await conn.execute(
                insert(generations)
                .values(projection=name, active=generation, updated_at=now)
                .on_conflict_do_nothing()
            )


ProjectionFactory = Callable[[int], Projection]


class LiveProjection:
    """Serves the active generation and follows a swap made by a rebuild."""

    def __init__(
        self,
        factory: ProjectionFactory,
        engine: AsyncEngine,
        kafka: KafkaSettings,
        catalog: EventCatalog,
        *,
        generation_check_seconds: float = 1.0,
    ) -> None:
        self.factory = factory
        self.engine = engine
        self.kafka = kafka
        self.catalog = catalog
        readiness.expect_consumers()
        self.generation_check_seconds = generation_check_seconds
        self.name = factory(1).name
        self.runner: ProjectionRunner | None = None

    async def current(self) -> Projection:
        generation = await active_generation(self.engine, self.name)
        if generation is None:
            generation = 1
            await activate_generation(self.engine, self.name, generation)
        return self.factory(generation)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            projection = await self.current()
            runner = ProjectionRunner(projection, self.engine, self.kafka, self.catalog)
            self.runner = runner
            swapped = asyncio.Event()
            watcher = asyncio.create_task(self._watch(projection.generation, swapped, stop))
            try:
                await runner.run(stop, until=swapped.is_set)
            finally:
                watcher.cancel()

    async def _watch(self, generation: int, swapped: asyncio.Event, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await asyncio.sleep(self.generation_check_seconds)
            try:
                active = await active_generation(self.engine, self.name)
            except Exception:
                # A busy or restarting database (SQLite's write lock held past its busy
                # timeout by a rebuild's batches): look again at the next tick. A watcher
                # that died here left the service on the old generation for good, its
                # lag growing, while the rebuilt one served nobody's events.
                log.warning("%s: active generation not read; looking again", self.name,
                            exc_info=True)
                continue
            if active != generation:
                swapped.set()
                return
