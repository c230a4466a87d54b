"""The projection runtime: read models built from topics, exactly once in effect.

A batch's effects, the ids of the events it applied and the position it
reached are written in one database transaction; Kafka offsets are committed
after it. So:

* a crash mid-batch rolls the whole batch back, and the redelivered batch is
  applied as if for the first time;
* an event delivered twice (a relay that re-sent it, a redelivery) finds its id
  already recorded and changes nothing;
* on (re)assignment a partition resumes from the position in the database,
  which is never behind the effects it describes.

A projection's tables carry a generation number. A rebuild fills generation
N+1 from the earliest offset while N keeps serving, then swaps the active
generation in one update.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import ClassVar

from aiokafka import TopicPartition
from sqlalchemy import MetaData, inspect, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from libs.events import metrics, readiness
from libs.events.catalog import EventCatalog
from libs.events.checkpoints import (
    applied_events,
    checkpoints,
    create_runtime_tables,
    generations,
    runtime_metadata,
)
from libs.events.consumer import Checkpoint, EventConsumer, Progress, ReceivedEvent
from libs.events.kafka import KafkaSettings
from libs.events.lag import PartitionLag, ProjectionStatus, end_offsets, projection_status
from libs.platform.db import drop_overwritten_pages, is_postgres, snapshot_reads

log = logging.getLogger(__name__)


class Projection(ABC):
    """A read model. Subclasses declare their tables in ``__init__`` with
    :meth:`table_name` and apply one event at a time inside the batch transaction."""

    name: ClassVar[str]
    topics: Sequence[str]

    def __init__(self, generation: int = 1) -> None:
        self.generation = generation
        self.metadata = MetaData()

    @property
    def key(self) -> str:
        """Consumer group and checkpoint key of this generation."""
        return f"{self.name}.g{self.generation}"

    def table_name(self, base: str) -> str:
        return f"{self.name}_{base}_g{self.generation}"

    @abstractmethod
    async def apply(self, conn: AsyncConnection, event: ReceivedEvent) -> None:
        """Apply one new (never before applied) event."""

    async def apply_many(self, conn: AsyncConnection, events: Sequence[ReceivedEvent]) -> None:
        """Apply new events in order. Override to fold a batch into fewer statements."""
        for event in events:
            await self.apply(conn, event)

    async def count_for_rebuild(self, conn: AsyncConnection) -> int | None:
        """How many entities (customers, ...) this generation holds; None: not counted.

        A rebuild that holds fewer than the generation it replaces is not swapped in.
        """
        return None


class ProjectionRunner:
    """Runs one generation of one projection as its own consumer group."""

    def __init__(
        self,
        projection: Projection,
        engine: AsyncEngine,
        kafka: KafkaSettings,
        catalog: EventCatalog,
        *,
        max_records: int = 1000,
    ) -> None:
        self.projection = projection
        self.engine = engine
        self.kafka = kafka
        self.catalog = catalog
        self.max_records = max_records
        self._insert = pg_insert if is_postgres(engine) else sqlite_insert
        self.progress: dict[TopicPartition, int] = {}
        self.consumer: EventConsumer | None = None
        readiness.expect_consumers()

    async def create_tables(self) -> None:
        async with self.engine.begin() as conn:
            await conn.run_sync(create_runtime_tables)
            await conn.run_sync(self.projection.metadata.create_all)

    async def run(self, stop: asyncio.Event, *, until: Callable[[], bool] | None = None) -> None:
        await self.create_tables()
        self.consumer = EventConsumer(
            self.kafka,
            group_id=self.projection.key,
            topics=self.projection.topics,
            catalog=self.catalog,
            handle_batch=self.apply_batch,
            checkpoints=self._resume,
            max_records=self.max_records,
        )
        await self.consumer.run(stop, until=until)

    async def apply_batch(self, received: Sequence[ReceivedEvent], progress: Progress) -> None:
        started = asyncio.get_running_loop().time()
        async with self.engine.begin() as conn:
            fresh = await self._first_time(conn, received)
            await self.projection.apply_many(conn, fresh)
            await self._save_progress(conn, progress)
        if any(e.event.erases_personal_data for e in fresh):
            if not await drop_overwritten_pages(self.engine):
                log.warning("%s: erased data still in the write-ahead log", self.projection.name)
        applied = len(fresh)
        metrics.EVENTS_APPLIED.labels(self.projection.name).inc(applied)
        if len(received) > applied:
            metrics.DUPLICATES_SKIPPED.labels(self.projection.name).inc(len(received) - applied)
        for tp, p in progress.items():
            self.progress[tp] = p.next_offset
        newest = max(
            (p.last_event_time for p in progress.values() if p.last_event_time), default=None
        )
        if newest is not None:
            metrics.PROJECTION_LAG_SECONDS.labels(self.projection.name).set(
                max(0.0, (datetime.now(UTC) - newest).total_seconds())
            )
        metrics.BATCH_SECONDS.labels(self.projection.name).observe(
            asyncio.get_running_loop().time() - started
        )

    async def _first_time(
        self, conn: AsyncConnection, received: Sequence[ReceivedEvent]
    ) -> list[ReceivedEvent]:
        """Record the batch's event ids; keep the events never applied before, in order."""
        if not received:
            return []
        ids = [e.envelope.id for e in received]
        if is_postgres(self.engine):
            result = await conn.execute(
                text(
                    "INSERT INTO projection_applied_events (projection, event_id) "
                    "SELECT :projection, id FROM unnest(CAST(:ids AS varchar[])) AS u(id) "
                    "ON CONFLICT DO NOTHING RETURNING event_id"
                ),
                {"projection": self.projection.key, "ids": ids},
            )
        else:
            rows = [{"projection": self.projection.key, "event_id": i} for i in dict.fromkeys(ids)]
            result = await conn.execute(
                self._insert(applied_events)
                .values(rows)
                .on_conflict_do_nothing()
                .returning(applied_events.c.event_id)
            )
        new = {r[0] for r in result}
        fresh = []
        for event in received:
            # A batch can carry the same event twice: apply its first copy only.
            if event.envelope.id in new:
                new.discard(event.envelope.id)
                fresh.append(event)
        return fresh

    async def _save_progress(self, conn: AsyncConnection, progress: Progress) -> None:
        if not progress:
            return
        now = datetime.now(UTC)
        rows = [
            {
                "projection": self.projection.key,
                "topic": tp.topic,
                "partition": tp.partition,
                "next_offset": p.next_offset,
                "last_event_time": p.last_event_time,
                "updated_at": now,
                "last_event_id": p.last_event_id,
            }
            for tp, p in progress.items()
        ]
        stmt = self._insert(checkpoints).values(rows)
        await conn.execute(
            stmt.on_conflict_do_update(
                index_elements=[
                    checkpoints.c.projection,
                    checkpoints.c.topic,
                    checkpoints.c.partition,
                ],
                set_={
                    "next_offset": stmt.excluded.next_offset,
                    "last_event_time": stmt.excluded.last_event_time,
                    "updated_at": stmt.excluded.updated_at,
                    "last_event_id": stmt.excluded.last_event_id,
                },
            )
        )

    async def _resume(self, assigned: set[TopicPartition]) -> dict[TopicPartition, Checkpoint]:
        """Start each partition where the database says, not where Kafka says."""
        saved = await self.saved_checkpoints()
        for tp in assigned:
            if tp in saved:
                self.progress[tp] = saved[tp].next_offset
        return saved

    async def checkpoints(self) -> dict[TopicPartition, int]:
        return {tp: c.next_offset for tp, c in (await self.saved_checkpoints()).items()}

    async def saved_checkpoints(self) -> dict[TopicPartition, Checkpoint]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(
                    checkpoints.c.topic,
                    checkpoints.c.partition,
                    checkpoints.c.next_offset,
                    checkpoints.c.last_event_id,
                ).where(checkpoints.c.projection == self.projection.key)
            )
            return {TopicPartition(t, p): Checkpoint(int(o), i) for t, p, o, i in rows}

    async def status(self) -> ProjectionStatus:
        return await projection_status(self.engine, self.kafka, self.projection)


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
            insert = pg_insert if is_postgres(engine) else sqlite_insert
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
    runner = ProjectionRunner(projection, engine, kafka, catalog)
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


__all__ = [
    "LiveProjection",
    "PartitionLag",
    "Projection",
    "ProjectionRunner",
    "ProjectionStatus",
    "RebuildProgress",
    "RebuildRefused",
    "activate_generation",
    "active_generation",
    "applied_events",
    "checkpoints",
    "end_offsets",
    "generations",
    "projection_status",
    "rebuild",
    "runtime_metadata",
]
