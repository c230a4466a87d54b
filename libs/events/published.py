"""What the relay knows it published, to tell when the broker lost it.

Per partition of the service's topic, the relay keeps (in the service's own
database) the base offset of the last pass it had acknowledged and the offset
after it. A broker that no longer holds that batch (the topic is missing, has
fewer partitions, ends before it, or acknowledges a new batch below it) lost
what was published; the relay then publishes the event store again, from its
first event, recording how far it got so that a relay restarted halfway carries
on (docs/decisions/0010).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Column, Integer, MetaData, String, Table, delete, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from libs.platform.db import BigId, UtcDateTime, upsert_for

relay_metadata = MetaData()

published_ends = Table(
    "outbox_published_ends",
    relay_metadata,
    Column("topic", String(200), primary_key=True),
    Column("partition", Integer, primary_key=True),
    # Base offset of the first batch of the last publishing pass (the broker must still
    # hold it), and the offset after the pass.
    Column("last_batch_offset", BigId, nullable=False),
    Column("end_offset", BigId, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

republishing = Table(
    "outbox_republishing",
    relay_metadata,
    Column("topic", String(200), primary_key=True),
    # Events up to this store position are published again.
    Column("after_position", BigId, nullable=False),
    Column("reason", String(400), nullable=False),
    Column("started_at", UtcDateTime, nullable=False),
)


@dataclass(frozen=True, slots=True)
class PartitionEnd:
    """Of one pass in one partition: the base offset of its first batch, the end after it."""

    last_batch_offset: int
    end_offset: int


@dataclass(frozen=True, slots=True)
class TopicLoss:
    kind: str  # "missing", "shorter" or "rewound": the metric's label
    detail: str


def compare_with_broker(
    known: Mapping[int, PartitionEnd], broker_ends: Mapping[int, int] | None
) -> TopicLoss | None:
    """What the broker lost of what was published, given its ends (None: no such topic).

    The broker's end is compared with the last acknowledged batch, not its end:
    the bundled broker answers ListOffsets with the last batch's base offset + 1.
    """
    if not known:
        return None
    if broker_ends is None:
        return TopicLoss("missing", "the topic is gone")
    for partition, end in sorted(known.items()):
        now = broker_ends.get(partition)
        if now is None:
            return TopicLoss("missing", f"partition {partition} is gone")
        if now <= end.last_batch_offset:
            return TopicLoss(
                "shorter",
                f"partition {partition} ends at {now}; {end.end_offset} were published",
            )
    return None


def compare_acknowledged(
    known: Mapping[int, PartitionEnd], acked: Mapping[int, PartitionEnd]
) -> TopicLoss | None:
    """A broker appends after what it acknowledged before; an ack below it is a new log."""
    for partition, ack in sorted(acked.items()):
        end = known.get(partition)
        if end is not None and ack.last_batch_offset < end.end_offset:
            return TopicLoss(
                "rewound",
                f"partition {partition} acknowledged offset {ack.last_batch_offset}; "
                f"{end.end_offset} were published",
            )
    return None


class PublishedLedger:
    """The relay's record of its topic, in the service's database."""

    def __init__(self, engine: AsyncEngine, topic: str) -> None:
        self.engine = engine
        self.topic = topic
        self.ends: dict[int, PartitionEnd] = {}
        # Set while the store is being published again: the position reached.
        self.republish_after: int | None = None
        self._loaded = False
        self._insert = upsert_for(engine)

    async def load(self) -> None:
        if self._loaded:
            return
        async with self.engine.begin() as conn:
            await conn.run_sync(relay_metadata.create_all)
            rows = await conn.execute(
                select(
                    published_ends.c.partition,
                    published_ends.c.last_batch_offset,
                    published_ends.c.end_offset,
                ).where(published_ends.c.topic == self.topic)
            )
            self.ends = {int(p): PartitionEnd(int(b), int(e)) for p, b, e in rows}
            after = await conn.scalar(
                select(republishing.c.after_position).where(republishing.c.topic == self.topic)
            )
        self.republish_after = int(after) if after is not None else None
        self._loaded = True

    async def record(self, conn: AsyncConnection, acked: Mapping[int, PartitionEnd]) -> None:
        """Remember what the broker acknowledged (in the caller's transaction)."""
        if not acked:
            return
        now = datetime.now(UTC)
        stmt = self._insert(published_ends).values(
            [
                {
                    "topic": self.topic,
                    "partition": p,
                    "last_batch_offset": a.last_batch_offset,
                    "end_offset": a.end_offset,
                    "updated_at": now,
                }
                for p, a in acked.items()
            ]
        )
        await conn.execute(
            stmt.on_conflict_do_update(
                index_elements=[published_ends.c.topic, published_ends.c.partition],
                set_={
                    "last_batch_offset": stmt.excluded.last_batch_offset,
                    "end_offset": stmt.excluded.end_offset,
                    "updated_at": stmt.excluded.updated_at,
                },
            )
        )
        self.ends.update(acked)

    async def start_republish(self, loss: TopicLoss) -> None:
        """Forget what the lost topic held and publish the store again from its start."""
        async with self.engine.begin() as conn:
            await conn.execute(delete(published_ends).where(published_ends.c.topic == self.topic))
            await conn.execute(delete(republishing).where(republishing.c.topic == self.topic))
            await conn.execute(
                republishing.insert().values(
                    topic=self.topic,
                    after_position=0,
                    reason=f"{loss.kind}: {loss.detail}"[:400],
                    started_at=datetime.now(UTC),
                )
            )
        self.ends = {}
        self.republish_after = 0

    async def republished_through(self, conn: AsyncConnection, position: int) -> None:
        await conn.execute(
            republishing.update()
            .where(republishing.c.topic == self.topic)
            .values(after_position=position)
        )
        self.republish_after = position

    async def finish_republish(self) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(delete(republishing).where(republishing.c.topic == self.topic))
        self.republish_after = None
