"""The consumer runtime: one consumer group, batches, a dead-letter topic.

Reads a batch with ``getmany``, decodes it, hands it to the group's batch
handler (which stores effects and progress in one transaction), then commits
the offsets. Nothing blocks a partition forever: a message that cannot be
decoded, or whose handler keeps failing, goes to ``<topic>.dlq`` with the error
in its headers, and the partition moves on. Types the catalog does not know are
counted and skipped (a newer producer is allowed to publish them).

A broker can lose a topic (the bundled one keeps it in memory) or have it
recreated: a partition whose checkpoint no longer matches the topic is read
again from its beginning (see docs/decisions/0010).

What it hands its handler is in ``received.py``; joining the group, and resuming
each assigned partition from its checkpoint, in ``consumer_group.py``.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from collections.abc import Callable, Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

from libs.events import metrics, readiness, tracing
from libs.events.catalog import EventCatalog, UndecodableEvent, UnknownEventType
from libs.events.consumer_group import PartitionAssignment, started_unless_stopped
from libs.events.envelope import EventEnvelope, InvalidEnvelope
from libs.events.fetch_pace import FetchPace
from libs.events.kafka import KafkaSettings, dlq_topic, ensure_topics, new_producer
from libs.events.received import (
    BatchHandler,
    Checkpoint,
    CheckpointLoader,
    PartitionProgress,
    Progress,
    ReceivedEvent,
)

log = logging.getLogger(__name__)


class EventConsumer:
    def __init__(
        self,
        kafka: KafkaSettings,
        *,
        group_id: str,
        topics: Sequence[str],
        catalog: EventCatalog,
        handle_batch: BatchHandler,
        checkpoints: CheckpointLoader | None = None,
        max_records: int = 1000,
        max_attempts: int = 3,
        retry_delay_seconds: float = 0.05,
        lost_after_seconds: float = 2.0,
        stall_after_seconds: float = 30.0,
        replaying: bool = False,
    ) -> None:
        self.kafka = kafka
        self.group_id = group_id
        self.topics = list(topics)
        self.catalog = catalog
        self.handle_batch = handle_batch
        self.checkpoints = checkpoints
        self.max_records = max_records
        self.max_attempts = max_attempts
        self.retry_delay_seconds = retry_delay_seconds
        # A rebuild's applies link to each event's trace rather than join it.
        self.replaying = replaying
        self.consumer: AIOKafkaConsumer | None = None
        # How long its fetches wait now (busy or idle): set while it runs.
        self.pace: FetchPace | None = None
        self._dlq: AIOKafkaProducer | None = None
        # How long a partition's end must stay below the position before it counts as
        # lost: a new Kafka leader can briefly report a lower high watermark.
        self.lost_after_seconds = lost_after_seconds
        self.stall_after_seconds = stall_after_seconds
        # Next offset to read per partition, as far as this process has applied.
        self.positions: dict[TopicPartition, int] = {}
        # Partitions resumed from a checkpoint whose message before it is still to be checked.
        self._verifying: dict[TopicPartition, Checkpoint] = {}
        self._below_position_since: dict[TopicPartition, float] = {}
        # Per partition behind its end: the position it waits at, and since when.
        self._waiting_since: dict[TopicPartition, tuple[int, float]] = {}
        # Partitions placed where their checkpoint says: the client starts fetching as
        # soon as it is assigned, before the checkpoints are read back.
        self._resumed: set[TopicPartition] = set()
        self.resets = 0
        self.dead_lettered = 0
        # For readiness: a first assignment came (the group was joined), and which
        # assigned partitions wait at the same position for too long.
        self.joined = False
        self._stalled: set[TopicPartition] = set()

    @property
    def stalled(self) -> bool:
        return bool(self._stalled)

    async def run(self, stop: asyncio.Event, *, until: Callable[[], bool] | None = None) -> None:
        """Consume until ``stop`` is set (or ``until()`` says so after a batch)."""
        await ensure_topics(self.kafka, self.topics + [dlq_topic(t) for t in self.topics])
        consumer = AIOKafkaConsumer(
            *self.topics,
            bootstrap_servers=self.kafka.bootstrap_servers,
            group_id=self.group_id,
            client_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=4 * 1024 * 1024,
            session_timeout_ms=self.kafka.session_timeout_ms,
            fetch_max_wait_ms=self.kafka.fetch_max_wait_ms,
            heartbeat_interval_ms=self.kafka.heartbeat_interval_ms,
        )
        dlq = new_producer(self.kafka, client_id=f"{self.group_id}-dlq")
        consumer.subscribe(self.topics, listener=PartitionAssignment(self, consumer))
        if not await started_unless_stopped(consumer, stop):
            return
        await dlq.start()
        self.consumer, self._dlq = consumer, dlq
        readiness.register(self)
        for topic in self.topics:
            # At 0 from the start: a panel or a rate() shows 0, not "No data".
            metrics.DEAD_LETTERED.labels(self.group_id, topic)
            metrics.HANDLER_FAILURES.labels(self.group_id, topic)
        pace = self.pace = FetchPace(consumer, self.kafka)
        try:
            while not stop.is_set():
                batches = await consumer.getmany(
                    timeout_ms=pace.poll_ms, max_records=self.max_records
                )
                pace.fetched(bool(batches))
                if batches:
                    await self._process(consumer, batches)
                await self._check_ends(consumer)
                self._record_lag(consumer)
                if until is not None and until():
                    return
        finally:
            readiness.unregister(self)
            self.consumer = self._dlq = None
            await consumer.stop()
            await dlq.stop()

    async def _process(
        self, consumer: AIOKafkaConsumer, batches: dict[TopicPartition, list[ConsumerRecord]]
    ) -> None:
        received: list[ReceivedEvent] = []
        progress: Progress = {}
        for tp, records in batches.items():
            if tp not in self._resumed:
                continue  # fetched from where the client chose; the checkpoint decides
            records = await self._same_topic(consumer, tp, records)
            for record in records:
                event = await self._decode(record)
                if event is not None:
                    received.append(event)
                time = event.envelope.time if event is not None else None
                previous = progress.get(tp)
                progress[tp] = PartitionProgress(
                    record.offset + 1,
                    time or (previous.last_event_time if previous else None),
                    _event_id(record),
                )
        if not progress:
            return
        with tracing.processing(self.group_id, received, replaying=self.replaying):
            await self._handle(received, progress)
        await consumer.commit({tp: p.next_offset for tp, p in progress.items()})
        self.positions.update({tp: p.next_offset for tp, p in progress.items()})

    async def _same_topic(
        self, consumer: AIOKafkaConsumer, tp: TopicPartition, records: list[ConsumerRecord]
    ) -> list[ConsumerRecord]:
        """The records to apply, once the partition is known to be the one checkpointed.

        A resumed partition is fetched from the message before its checkpoint: if that
        message is the one applied last, the topic is the same and it is dropped;
        anything else (another message there, or offsets that went back) means the
        topic was lost or recreated, and the partition is read again from its start.
        """
        if not records:
            return records
        checkpoint = self._verifying.pop(tp, None)
        if checkpoint is not None:
            first = records[0]
            if first.offset >= checkpoint.next_offset:
                return records  # the message before is gone (retention): nothing to compare
            if first.offset == checkpoint.next_offset - 1 and (
                checkpoint.last_event_id is None or _event_id(first) == checkpoint.last_event_id
            ):
                return records[1:]
            reason = "recreated" if first.offset == checkpoint.next_offset - 1 else "offsets_back"
            await self._reset(consumer, tp, reason, checkpoint.next_offset)
            return []
        expected = self.positions.get(tp)
        if expected is not None and records[0].offset < expected:
            # The client went back by itself (an out-of-range fetch on Kafka): say so.
            self._count_reset(tp, "offsets_back", expected, records[0].offset)
        return records

    async def _check_ends(self, consumer: AIOKafkaConsumer) -> None:
        """A partition whose end stays below the position lost messages: start it over."""
        now = asyncio.get_running_loop().time()
        for tp in consumer.assignment():
            end = consumer.highwater(tp)
            position = self.positions.get(tp)
            if end is None or position is None or end >= position:
                self._below_position_since.pop(tp, None)
                continue
            since = self._below_position_since.setdefault(tp, now)
            if now - since >= self.lost_after_seconds:
                await self._reset(consumer, tp, "shorter", position)

    async def _reset(
        self, consumer: AIOKafkaConsumer, tp: TopicPartition, reason: str, was: int
    ) -> None:
        await consumer.seek_to_beginning(tp)
        start = await consumer.position(tp)
        self._verifying.pop(tp, None)
        self._below_position_since.pop(tp, None)
        self._count_reset(tp, reason, was, start)
        # Saved at once, so that no status reads a checkpoint beyond the end meanwhile.
        await self.handle_batch([], {tp: PartitionProgress(start, None, None)})
        self.positions[tp] = start

    def _count_reset(self, tp: TopicPartition, reason: str, was: int, now_at: int) -> None:
        self.resets += 1
        metrics.CONSUMER_RESETS.labels(self.group_id, tp.topic, reason).inc()
        log.warning(
            "%s: %s[%d] no longer holds what was read up to offset %d (%s); "
            "reading it again from offset %d",
            self.group_id,
            tp.topic,
            tp.partition,
            was,
            reason,
            now_at,
        )

    async def _decode(self, record: ConsumerRecord) -> ReceivedEvent | None:
        try:
            envelope = EventEnvelope.from_kafka(record.key, record.value, record.headers)
        except InvalidEnvelope as exc:
            await self._dead_letter(record, f"InvalidEnvelope: {exc}")
            return None
        try:
            event = self.catalog.decode(envelope.type, envelope.data)
        except UnknownEventType:
            metrics.UNKNOWN_EVENTS.labels(self.group_id, envelope.type).inc()
            return None
        except (UndecodableEvent, ValueError) as exc:
            await self._dead_letter(record, f"UndecodableEvent: {exc}")
            return None
        delivered_by = (
            tracing.delivery_context(record.headers) if tracing.traces_recorded() else None
        )
        return ReceivedEvent(
            envelope, event, record.topic, record.partition, record.offset, delivered_by
        )

    async def _handle(self, received: list[ReceivedEvent], progress: Progress) -> None:
        try:
            await self.handle_batch(received, progress)
            return
        except Exception as exc:
            metrics.HANDLER_FAILURES.labels(self.group_id, _topics(received)).inc()
            log.warning(
                "%s: batch of %d failed (%s); retrying one by one",
                self.group_id,
                len(received),
                exc,
            )
        # Slow path: isolate the failing event(s) so the rest of the batch lands.
        for event in received:
            tp = TopicPartition(event.topic, event.partition)
            step = {tp: PartitionProgress(event.offset + 1, event.envelope.time, event.envelope.id)}
            await self._handle_one(event, step)
        # Progress past skipped messages (unknown, dead-lettered) at the batch's end.
        await self.handle_batch([], progress)

    async def _handle_one(self, event: ReceivedEvent, step: Progress) -> None:
        for attempt in range(1, self.max_attempts + 1):
            try:
                await self.handle_batch([event], step)
                return
            except Exception as exc:
                metrics.HANDLER_FAILURES.labels(self.group_id, event.topic).inc()
                if attempt == self.max_attempts:
                    reason = "".join(traceback.format_exception_only(exc)).strip()
                    await self._dead_letter_event(event, f"HandlerFailed: {reason}")
                    await self.handle_batch([], step)
                    return
                await asyncio.sleep(self.retry_delay_seconds * attempt)

    async def _dead_letter(self, record: ConsumerRecord, error: str) -> None:
        await self._send_dlq(
            record.topic,
            record.partition,
            record.offset,
            record.key,
            record.value,
            list(record.headers or ()),
            error,
        )

    async def _dead_letter_event(self, event: ReceivedEvent, error: str) -> None:
        record = event.envelope.to_kafka()
        await self._send_dlq(
            event.topic,
            event.partition,
            event.offset,
            record.key,
            record.value,
            record.headers,
            error,
        )

    async def _send_dlq(
        self,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]],
        error: str,
    ) -> None:
        assert self._dlq is not None
        log.error(
            "%s: dead-lettering %s[%d]@%d: %s", self.group_id, topic, partition, offset, error
        )
        headers = [
            *headers,
            ("dlq_error", error[:4000].encode()),
            ("dlq_group", self.group_id.encode()),
            ("dlq_topic", topic.encode()),
            ("dlq_partition", str(partition).encode()),
            ("dlq_offset", str(offset).encode()),
        ]
        # A DLQ that cannot be written must stop the consumer, not drop the message.
        await (await self._dlq.send(dlq_topic(topic), key=key, value=value, headers=headers))
        metrics.DEAD_LETTERED.labels(self.group_id, topic).inc()
        self.dead_lettered += 1

    def _record_lag(self, consumer: AIOKafkaConsumer) -> None:
        now = asyncio.get_running_loop().time()
        for tp in consumer.assignment():
            end = consumer.highwater(tp)
            current = self.positions.get(tp)
            if end is None or current is None:
                continue
            labels = (self.group_id, tp.topic, str(tp.partition))
            # A position beyond the end has everything of the partition still to read.
            lag = end - current if end >= current else end
            metrics.CONSUMER_LAG.labels(*labels).set(lag)
            # Stalled: behind, at the same position, for longer than the limit.
            waiting = self._waiting_since.get(tp)
            if lag <= 0 and end >= current:
                self._waiting_since.pop(tp, None)
                waiting = None
            elif waiting is None or waiting[0] != current:
                self._waiting_since[tp] = waiting = (current, now)
            stalled = end < current or (
                waiting is not None and now - waiting[1] > self.stall_after_seconds
            )
            metrics.CONSUMER_STALLED.labels(*labels).set(1 if stalled else 0)
            if stalled:
                self._stalled.add(tp)
            else:
                self._stalled.discard(tp)


def _event_id(record: ConsumerRecord) -> str | None:
    for key, value in record.headers or ():
        if key == "ce_id":
            return bytes(value).decode(errors="replace")
    return None


def _topics(received: Sequence[ReceivedEvent]) -> str:
    return ",".join(sorted({e.topic for e in received})) or "-"


__all__ = [
    "Checkpoint",
    "EventConsumer",
    "KafkaError",
    "PartitionProgress",
    "Progress",
    "ReceivedEvent",
]

