"""Applying a projection's events: a batch's effects, the ids it applied and the
position it reached in one transaction (``libs.events.projection``)."""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import ClassVar

from aiokafka import TopicPartition
from sqlalchemy import MetaData, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from libs.events import metrics, readiness
from libs.events.catalog import EventCatalog
from libs.events.checkpoints import (
    applied_events,
    checkpoints,
    create_runtime_tables,
)
from libs.events.consumer import Checkpoint, EventConsumer, Progress, ReceivedEvent
from libs.events.kafka import KafkaSettings
from libs.events.lag import ProjectionStatus, projection_status
from libs.events.tracing import exemplar
from libs.platform.db import drop_overwritten_pages, is_postgres, upsert_for

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
        replaying: bool = False,
    ) -> None:
        self.projection = projection
        self.replaying = replaying
        self.engine = engine
        self.kafka = kafka
        self.catalog = catalog
        self.max_records = max_records
        self._insert = upsert_for(engine)
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
            replaying=self.replaying,
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
            asyncio.get_running_loop().time() - started, exemplar()
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
