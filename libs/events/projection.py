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
from typing import Any, ClassVar

from aiokafka import AIOKafkaConsumer, TopicPartition
from sqlalchemy import Column, Integer, MetaData, String, Table, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from libs.events import metrics
from libs.events.catalog import EventCatalog
from libs.events.consumer import EventConsumer, Progress, ReceivedEvent
from libs.events.kafka import KafkaSettings
from libs.platform.db import BigId, UtcDateTime, drop_overwritten_pages, is_postgres

log = logging.getLogger(__name__)

runtime_metadata = MetaData()

checkpoints = Table(
    "projection_checkpoints",
    runtime_metadata,
    Column("projection", String(120), primary_key=True),
    Column("topic", String(200), primary_key=True),
    Column("partition", Integer, primary_key=True),
    Column("next_offset", BigId, nullable=False),
    Column("last_event_time", UtcDateTime),
    Column("updated_at", UtcDateTime, nullable=False),
)

applied_events = Table(
    "projection_applied_events",
    runtime_metadata,
    Column("projection", String(120), primary_key=True),
    Column("event_id", String(64), primary_key=True),
)

generations = Table(
    "projection_generations",
    runtime_metadata,
    Column("projection", String(80), primary_key=True),
    Column("active", Integer, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)


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


@dataclass(frozen=True)
class PartitionLag:
    topic: str
    partition: int
    next_offset: int
    end_offset: int
    last_event_time: datetime | None

    @property
    def events(self) -> int:
        return max(0, self.end_offset - self.next_offset)


@dataclass(frozen=True)
class ProjectionStatus:
    projection: str
    generation: int
    partitions: list[PartitionLag]

    @property
    def lag_events(self) -> int:
        return sum(p.events for p in self.partitions)

    @property
    def lag_seconds(self) -> float:
        times = [p.last_event_time for p in self.partitions if p.last_event_time and p.events]
        if not times:
            return 0.0
        return max(0.0, (datetime.now(UTC) - min(times)).total_seconds())

    def as_dict(self) -> dict[str, Any]:
        return {
            "projection": self.projection,
            "generation": self.generation,
            "lag_events": self.lag_events,
            "lag_seconds": round(self.lag_seconds, 3),
            "partitions": [
                {
                    "topic": p.topic,
                    "partition": p.partition,
                    "next_offset": p.next_offset,
                    "end_offset": p.end_offset,
                }
                for p in self.partitions
            ],
        }


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

    async def create_tables(self) -> None:
        async with self.engine.begin() as conn:
            await conn.run_sync(runtime_metadata.create_all)
            await conn.run_sync(self.projection.metadata.create_all)

    async def run(self, stop: asyncio.Event, *, until: Callable[[], bool] | None = None) -> None:
        await self.create_tables()
        self.consumer = EventConsumer(
            self.kafka,
            group_id=self.projection.key,
            topics=self.projection.topics,
            catalog=self.catalog,
            handle_batch=self.apply_batch,
            on_assigned=self._resume,
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
                },
            )
        )

    async def _resume(self, consumer: AIOKafkaConsumer, assigned: set[TopicPartition]) -> None:
        """Start each partition where the database says, not where Kafka says."""
        saved = await self.checkpoints()
        for tp in assigned:
            if tp in saved:
                consumer.seek(tp, saved[tp])
                self.progress[tp] = saved[tp]

    async def checkpoints(self) -> dict[TopicPartition, int]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(
                    checkpoints.c.topic, checkpoints.c.partition, checkpoints.c.next_offset
                ).where(checkpoints.c.projection == self.projection.key)
            )
            return {TopicPartition(t, p): int(o) for t, p, o in rows}

    async def status(self) -> ProjectionStatus:
        return await projection_status(self.engine, self.kafka, self.projection)


async def end_offsets(kafka: KafkaSettings, topics: Sequence[str]) -> dict[TopicPartition, int]:
    """The offset after the last message of every partition of ``topics``.

    ListOffsets alone is not trusted: the bundled broker answers it with the last
    batch's base offset + 1. The high watermark of a fetch is right on every
    broker, so each non-empty partition is fetched once near its end.
    """
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap_servers, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = _partitions(consumer, topics)
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = _partitions(consumer, topics)
        if not partitions:
            return {}
        ends = dict(await consumer.end_offsets(partitions))
        pending = {tp for tp, end in ends.items() if end > 0}
        consumer.assign(partitions)
        for tp in partitions:
            consumer.seek(tp, max(0, ends[tp] - 1))
        deadline = asyncio.get_running_loop().time() + 5.0
        while pending and asyncio.get_running_loop().time() < deadline:
            await consumer.getmany(*pending, timeout_ms=200, max_records=1)
            for tp in list(pending):
                highwater = consumer.highwater(tp)
                if highwater is not None:
                    ends[tp] = max(ends[tp], highwater)
                    pending.discard(tp)
        return ends
    finally:
        await consumer.stop()


def _partitions(consumer: AIOKafkaConsumer, topics: Sequence[str]) -> list[TopicPartition]:
    return [
        TopicPartition(topic, p)
        for topic in topics
        for p in sorted(consumer.partitions_for_topic(topic) or ())
    ]


async def projection_status(
    engine: AsyncEngine, kafka: KafkaSettings, projection: Projection
) -> ProjectionStatus:
    ends = await end_offsets(kafka, projection.topics)
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(
                checkpoints.c.topic,
                checkpoints.c.partition,
                checkpoints.c.next_offset,
                checkpoints.c.last_event_time,
            ).where(checkpoints.c.projection == projection.key)
        )
        saved = {TopicPartition(t, p): (int(o), ts) for t, p, o, ts in rows}
    partitions = [
        PartitionLag(
            tp.topic, tp.partition, saved.get(tp, (0, None))[0], end, saved.get(tp, (0, None))[1]
        )
        for tp, end in sorted(ends.items())
    ]
    return ProjectionStatus(projection.name, projection.generation, partitions)


async def active_generation(engine: AsyncEngine, name: str) -> int | None:
    async with engine.begin() as conn:
        await conn.run_sync(runtime_metadata.create_all)
        result = await conn.execute(
            select(generations.c.active).where(generations.c.projection == name)
        )
        value = result.scalar_one_or_none()
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
            if await active_generation(self.engine, self.name) != generation:
                swapped.set()
                return


async def rebuild(
    factory: ProjectionFactory,
    engine: AsyncEngine,
    kafka: KafkaSettings,
    catalog: EventCatalog,
    *,
    timeout_seconds: float = 600.0,
) -> int:
    """Fill a new generation from the earliest offset, then make it the active one.

    The old generation keeps serving until the new one has caught up with the
    end of every partition as it was when the rebuild started.
    """
    name = factory(1).name
    current = await active_generation(engine, name) or 0
    projection = factory(current + 1)
    targets = await end_offsets(kafka, projection.topics)
    runner = ProjectionRunner(projection, engine, kafka, catalog)

    def caught_up() -> bool:
        return all(runner.progress.get(tp, 0) >= end for tp, end in targets.items() if end > 0)

    stop = asyncio.Event()
    if not caught_up():
        await asyncio.wait_for(runner.run(stop, until=caught_up), timeout=timeout_seconds)
    else:
        await runner.create_tables()
    await activate_generation(engine, name, projection.generation)
    log.info("projection %s: generation %d is now active", name, projection.generation)
    return projection.generation
