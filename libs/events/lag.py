"""How far behind a projection is: in events, in seconds, and whether it is stalled.

A status must never read "no lag" while a projection is behind or stuck
(docs/decisions/0010), so besides the distance between checkpoint and
partition end it says:

* a checkpoint **beyond the end** of its partition (the topic was lost and
  came back shorter): everything in the partition is still to read, and the
  partition is stalled until the consumer starts it over;
* a partition behind whose checkpoint has not moved, and whose oldest unread
  message has waited, for ``stall_after_seconds``: stalled;
* seconds: how long the oldest message not yet applied has waited on the topic.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, TopicPartition
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from libs.events.checkpoints import checkpoints
from libs.events.kafka import KafkaSettings

STALL_AFTER_SECONDS = 30.0


class MeasuredProjection(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def generation(self) -> int: ...
    @property
    def key(self) -> str: ...
    @property
    def topics(self) -> Sequence[str]: ...


@dataclass(frozen=True)
class PartitionLag:
    topic: str
    partition: int
    next_offset: int
    end_offset: int
    last_event_time: datetime | None
    # How long the oldest message not yet applied has waited (0 when none waits).
    seconds: float = 0.0
    stalled: bool = False

    @property
    def beyond_end(self) -> bool:
        return self.next_offset > self.end_offset

    @property
    def events(self) -> int:
        # Beyond the end: the partition will be read again from its start.
        return self.end_offset if self.beyond_end else self.end_offset - self.next_offset

    @property
    def state(self) -> str:
        if self.beyond_end:
            return "beyond_end"
        if self.stalled:
            return "stalled"
        return "behind" if self.events else "caught_up"


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
        return max((p.seconds for p in self.partitions), default=0.0)

    @property
    def stalled(self) -> bool:
        return any(p.stalled for p in self.partitions)

    def as_dict(self) -> dict[str, Any]:
        return {
            "projection": self.projection,
            "generation": self.generation,
            "lag_events": self.lag_events,
            "lag_seconds": round(self.lag_seconds, 3),
            "stalled": self.stalled,
            "partitions": [
                {
                    "topic": p.topic,
                    "partition": p.partition,
                    "next_offset": p.next_offset,
                    "end_offset": p.end_offset,
                    "state": p.state,
                }
                for p in self.partitions
            ],
        }


@dataclass(frozen=True, slots=True)
class SavedCheckpoint:
    next_offset: int
    last_event_time: datetime | None
    updated_at: datetime | None


def partition_lag(
    tp: TopicPartition,
    end: int,
    saved: SavedCheckpoint | None,
    oldest_unread_at: datetime | None,
    *,
    now: datetime,
    stall_after_seconds: float = STALL_AFTER_SECONDS,
) -> PartitionLag:
    """One partition's lag, from what was measured (pure: the clock is given)."""
    next_offset = saved.next_offset if saved else 0
    beyond = next_offset > end
    waiting = end > 0 if beyond else end > next_offset
    moved_at = saved.updated_at if saved else None
    seconds = 0.0
    if waiting or beyond:
        since = oldest_unread_at or moved_at or (saved.last_event_time if saved else None)
        seconds = max(0.0, (now - since).total_seconds()) if since else 0.0
    # Stalled: no progress while something waits. Both must be old: a quiet projection
    # whose checkpoint last moved an hour ago is not stalled by a message a second old.
    known = [t for t in (moved_at, oldest_unread_at) if t is not None]
    stalled = beyond or (
        waiting and bool(known) and (now - max(known)).total_seconds() > stall_after_seconds
    )
    return PartitionLag(
        tp.topic,
        tp.partition,
        next_offset,
        end,
        saved.last_event_time if saved else None,
        seconds,
        stalled,
    )


async def end_offsets(kafka: KafkaSettings, topics: Sequence[str]) -> dict[TopicPartition, int]:
    """The offset after the last message of every partition of ``topics``."""
    ends, _ = await measure_partitions(kafka, topics, {})
    return ends


async def measure_partitions(
    kafka: KafkaSettings, topics: Sequence[str], read_from: Mapping[TopicPartition, int]
) -> tuple[dict[TopicPartition, int], dict[TopicPartition, datetime]]:
    """Every partition's end, and when the message at ``read_from[tp]`` was published.

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
            return {}, {}
        ends = dict(await consumer.end_offsets(partitions))
        pending = {tp for tp, end in ends.items() if end > 0}
        consumer.assign(partitions)
        for tp in partitions:
            consumer.seek(tp, max(0, ends[tp] - 1))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5.0
        while pending and loop.time() < deadline:
            await consumer.getmany(*pending, timeout_ms=200, max_records=1)
            for tp in list(pending):
                highwater = consumer.highwater(tp)
                if highwater is not None:
                    ends[tp] = max(ends[tp], highwater)
                    pending.discard(tp)
        # The oldest message not yet read: a fetch at the reader's position.
        unread = {
            tp: read_from[tp] for tp in partitions if tp in read_from and read_from[tp] < ends[tp]
        }
        published: dict[TopicPartition, datetime] = {}
        for tp, offset in unread.items():
            consumer.seek(tp, offset)
        deadline = loop.time() + 5.0
        while unread and loop.time() < deadline:
            fetched = await consumer.getmany(*unread, timeout_ms=200)
            for tp, records in fetched.items():
                if records and tp in unread:
                    published[tp] = datetime.fromtimestamp(records[0].timestamp / 1000, UTC)
                    del unread[tp]
        return ends, published
    finally:
        await consumer.stop()


def _partitions(consumer: AIOKafkaConsumer, topics: Sequence[str]) -> list[TopicPartition]:
    return [
        TopicPartition(topic, p)
        for topic in topics
        for p in sorted(consumer.partitions_for_topic(topic) or ())
    ]


async def projection_status(
    engine: AsyncEngine,
    kafka: KafkaSettings,
    projection: MeasuredProjection,
    *,
    now: datetime | None = None,
    stall_after_seconds: float = STALL_AFTER_SECONDS,
) -> ProjectionStatus:
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(
                checkpoints.c.topic,
                checkpoints.c.partition,
                checkpoints.c.next_offset,
                checkpoints.c.last_event_time,
                checkpoints.c.updated_at,
            ).where(checkpoints.c.projection == projection.key)
        )
        saved = {TopicPartition(t, p): SavedCheckpoint(int(o), ts, at) for t, p, o, ts, at in rows}
    ends, published = await measure_partitions(
        kafka, projection.topics, {tp: c.next_offset for tp, c in saved.items()}
    )
    # Never read, or beyond the end: what waits is the partition from its start.
    from_start = {
        tp: 0
        for tp, end in ends.items()
        if end > 0 and tp not in published and (tp not in saved or saved[tp].next_offset > end)
    }
    if from_start:
        published.update((await measure_partitions(kafka, projection.topics, from_start))[1])
    measured_at = now or datetime.now(UTC)
    partitions = [
        partition_lag(
            tp,
            end,
            saved.get(tp),
            published.get(tp),
            now=measured_at,
            stall_after_seconds=stall_after_seconds,
        )
        for tp, end in sorted(ends.items())
    ]
    return ProjectionStatus(projection.name, projection.generation, partitions)
