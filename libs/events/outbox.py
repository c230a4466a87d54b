"""The outbox relay: publishes every committed event to the service's topic.

Why an outbox table rather than "events after the highest position published":
transactions commit out of order, so position 11 can be visible before
position 10 is. The relay reads what is in the outbox *now*, publishes it in
position order (which is stream order for every stream), and deletes only the
rows it published. A row that commits late is simply there on the next pass.

Delivery is at least once: if the relay dies between publishing and deleting,
the same events go out again and consumers drop them by event id.

The broker may lose what it was given (the bundled one keeps topics in memory):
before each pass, and every few seconds while idle, the relay compares the
topic with what it knows it published, and on a loss publishes the whole store
again before anything new (libs/events/published.py, docs/decisions/0010).

The outbox table's bookkeeping (what waits, its backlog, deleting what was
acknowledged) is in ``outbox_rows.py``; the batches per partition, and what the
broker acknowledged of them, in ``partition_batches.py``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from libs.events import metrics, tracing
from libs.events.envelope import KafkaRecord
from libs.events.kafka import KafkaSettings, ensure_topics, new_producer
from libs.events.outbox_rows import (
    OutboxBacklog,
    outbox_backlog,
    pending_events,
    remove_published,
)
from libs.events.partition_batches import TopicMissing, send_in_partition_batches
from libs.events.published import (
    PartitionEnd,
    PublishedLedger,
    TopicLoss,
    compare_acknowledged,
    compare_with_broker,
)
from libs.events.store import EventStore, RecordedEvent
from libs.platform.db import is_postgres
from libs.platform.leadership import Leadership

# What the outbox holds and what sending found are beside the relay; callers import
# them from here as before.
__all__ = ["OutboxBacklog", "OutboxRelay", "TopicMissing", "outbox_backlog"]

log = logging.getLogger(__name__)


class OutboxRelay:
    def __init__(
        self,
        store: EventStore,
        kafka: KafkaSettings,
        *,
        service: str,
        topic: str,
        source: str,
        schema_url: Callable[[str], str | None] = lambda _type: None,
        batch_size: int = 5000,
        idle_poll_seconds: float = 0.02,
        idle_max_poll_seconds: float | None = None,
        max_backoff_seconds: float = 5.0,
        verify_every_seconds: float = 5.0,
        confirm_loss_seconds: float = 1.0,
    ) -> None:
        self.store = store
        self.kafka = kafka
        self.service = service
        self.topic = topic
        self.source = source
        self.schema_url = schema_url
        self.batch_size = batch_size
        self.idle_poll_seconds = idle_poll_seconds
        # Each empty look doubles the wait before the next, up to this (None: no
        # growth): a quiet relay looks a few times a second, a busy one at once. Its
        # own process's appends wake it whatever the wait (decision 0107).
        self.idle_max_poll_seconds = max(idle_max_poll_seconds or 0.0, idle_poll_seconds)
        self.max_backoff_seconds = max_backoff_seconds
        # While idle, how often the topic is compared with what was published.
        self.verify_every_seconds = verify_every_seconds
        # A suspected loss is looked at again after this long before the store goes
        # out again: a new Kafka leader can briefly answer with a lower end.
        self.confirm_loss_seconds = confirm_loss_seconds
        self.ledger = PublishedLedger(store.engine, topic)
        self._producer: AIOKafkaProducer | None = None
        self._probe: AIOKafkaConsumer | None = None
        self._backlog_measured_at = 0.0
        self._verified_at = 0.0
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Called after a local append so the relay does not wait for its next poll."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Relay until ``stop`` is set; broker outages are retried with backoff."""
        backoff = 0.1
        idle = self.idle_poll_seconds
        async with _single_relay(self.store.engine, self.topic, stop) as leader:
            if not leader:
                return
            while not stop.is_set():
                # Cleared before looking: an append while this look runs wakes the wait.
                self._wake.clear()
                try:
                    published = await self.relay_once()
                    backoff = 0.1
                except (KafkaError, OSError, TimeoutError) as exc:
                    metrics.RELAY_FAILURES.labels(self.service).inc()
                    log.warning(
                        "relay %s: broker unavailable (%s); retry in %.1fs",
                        self.service,
                        exc,
                        backoff,
                    )
                    await self._drop_producer()
                    await _sleep_or_stop(stop, backoff)
                    backoff = min(backoff * 2, self.max_backoff_seconds)
                    continue
                if published:
                    idle = self.idle_poll_seconds
                    continue
                await _wait_any(stop, self._wake, idle)
                idle = min(idle * 2, self.idle_max_poll_seconds)
        await self._drop_producer()

    async def close(self) -> None:
        await self._drop_producer()

    async def relay_once(self) -> int:
        """Publish one batch of the outbox; return how many events went out."""
        await self.ledger.load()
        if self.ledger.republish_after is not None:
            return await self._republish_lost()
        async with self.store.engine.connect() as conn:
            batch = await self._pending(conn)
            # Counting a long backlog on every pass would cost more than publishing it;
            # an empty pass needs no count at all.
            if batch and time.monotonic() - self._backlog_measured_at > 1.0:
                await self._record_backlog(conn)
                self._backlog_measured_at = time.monotonic()
        if not batch:
            metrics.OUTBOX_BACKLOG.labels(self.service).set(0)
            metrics.OUTBOX_OLDEST_AGE.labels(self.service).set(0)
            if time.monotonic() - self._verified_at >= self.verify_every_seconds:
                if await self._broker_lost():
                    return await self._republish_lost()
            return 0
        # Checked before publishing: what is new must follow the history on the topic.
        if await self._broker_lost():
            return await self._republish_lost()
        acked = await self._publish([record for _, record in batch])
        loss = compare_acknowledged(self.ledger.ends, acked)
        if loss is not None:
            # Lost between the check and the send: the store goes out again after it.
            await self._lost(loss)
            return 0
        positions = [position for position, _ in batch]
        async with self.store.engine.begin() as conn:
            await remove_published(conn, self.store.engine, positions)
            await self.ledger.record(conn, acked)
        metrics.EVENTS_PUBLISHED.labels(self.topic).inc(len(batch))
        return len(batch)

    async def republish_all(self, *, after_position: int = 0) -> int:
        """Publish the whole store again, in order (to rebuild a lost topic).

        Through this relay's store, so events go out as the service publishes them
        (personal data opened, or redacted once erased)."""
        await self.ledger.load()
        count = 0
        while True:
            batch = await self.store.read_all(after_position=after_position, limit=self.batch_size)
            if not batch:
                return count
            acked = await self._publish([self._record(e) for e in batch], republishing=True)
            async with self.store.engine.begin() as conn:
                await self.ledger.record(conn, acked)
            metrics.EVENTS_REPUBLISHED.labels(self.topic).inc(len(batch))
            after_position = batch[-1].position
            count += len(batch)

    async def _republish_lost(self) -> int:
        """Publish the next batch of the store to the topic that lost it."""
        after = self.ledger.republish_after or 0
        batch = await self.store.read_all(after_position=after, limit=self.batch_size)
        if not batch:
            await self.ledger.finish_republish()
            log.warning("relay %s: %s holds the whole store again", self.service, self.topic)
            return 0
        acked = await self._publish([self._record(e) for e in batch], republishing=True)
        loss = compare_acknowledged(self.ledger.ends, acked)
        if loss is not None:
            await self._lost(loss)
            return 0
        async with self.store.engine.begin() as conn:
            await self.ledger.record(conn, acked)
            await self.ledger.republished_through(conn, batch[-1].position)
        metrics.EVENTS_REPUBLISHED.labels(self.topic).inc(len(batch))
        return len(batch)

    async def _broker_lost(self) -> bool:
        """Whether the broker lost what was published (asked twice before saying so)."""
        if not self.ledger.ends:
            self._verified_at = time.monotonic()
            return False
        loss = compare_with_broker(self.ledger.ends, await self._broker_ends())
        if loss is not None:
            await asyncio.sleep(self.confirm_loss_seconds)
            loss = compare_with_broker(self.ledger.ends, await self._broker_ends())
        self._verified_at = time.monotonic()
        if loss is None:
            return False
        await self._lost(loss)
        return True

    async def _lost(self, loss: TopicLoss) -> None:
        metrics.TOPIC_LOSSES.labels(self.topic, loss.kind).inc()
        log.warning(
            "relay %s: the broker lost what was published to %s (%s); publishing the "
            "event store again",
            self.service,
            self.topic,
            loss.detail,
        )
        await self.ledger.start_republish(loss)

    async def _broker_ends(self) -> dict[int, int] | None:
        """The end of each partition of the topic as the broker says now; None if none."""
        producer = await self._ensure_producer()
        await producer.client.force_metadata_update()
        partitions = producer.client.cluster.partitions_for_topic(self.topic)
        if not partitions:
            return None
        if self._probe is None:
            probe = AIOKafkaConsumer(
                bootstrap_servers=self.kafka.bootstrap_servers,
                enable_auto_commit=False,
                request_timeout_ms=self.kafka.request_timeout_ms,
            )
            try:
                await probe.start()
            except BaseException:
                await probe.stop()
                raise
            self._probe = probe
        ends = await asyncio.wait_for(
            self._probe.end_offsets([TopicPartition(self.topic, p) for p in partitions]),
            timeout=self.kafka.request_timeout_ms / 1000,
        )
        return {tp.partition: int(end) for tp, end in ends.items()}

    def _record(self, event: RecordedEvent, encoded_data: bytes | None = None) -> KafkaRecord:
        envelope = event.to_envelope(self.source, self.schema_url(event.type))
        return envelope.to_kafka(encoded_data=encoded_data)

    async def _pending(self, conn: AsyncConnection) -> list[tuple[int, KafkaRecord]]:
        """The outbox now, in position order, as Kafka records."""
        pending = await pending_events(conn, self.store, self.batch_size)
        return [(e.position, self._record(e, plain)) for e, plain in pending]

    async def _record_backlog(self, conn: AsyncConnection) -> None:
        backlog = await outbox_backlog(conn)
        metrics.OUTBOX_BACKLOG.labels(self.service).set(backlog.events)
        metrics.OUTBOX_OLDEST_AGE.labels(self.service).set(backlog.oldest_age_seconds)

    async def _publish(
        self, batch: list[KafkaRecord], *, republishing: bool = False
    ) -> dict[int, PartitionEnd]:
        """Send ``batch``; per partition, the first offset acknowledged and the end after.
        Republished copies link to their events' traces rather than join them."""
        producer = await self._ensure_producer()
        # A bound on the whole pass: a broker that restarted without the topic can
        # leave batches waiting for a leader indefinitely. Timing out drops the
        # producer, and the next one creates the topic again.
        with tracing.publishing(self.topic, batch, republishing=republishing) as traced:
            return await asyncio.wait_for(
                send_in_partition_batches(producer, self.topic, traced),
                timeout=2 * self.kafka.request_timeout_ms / 1000,
            )

    async def _ensure_producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            await ensure_topics(self.kafka, [self.topic])
            producer = new_producer(self.kafka, client_id=f"{self.service}-relay")
            try:
                await producer.start()
            except BaseException:
                await producer.stop()
                raise
            self._producer = producer
        return self._producer

    async def _drop_producer(self) -> None:
        if self._probe is not None:
            probe, self._probe = self._probe, None
            try:
                await asyncio.wait_for(probe.stop(), timeout=5)
            except (KafkaError, OSError, TimeoutError) as exc:
                log.debug("probe stop failed: %s", exc)
        if self._producer is not None:
            producer, self._producer = self._producer, None
            try:
                await asyncio.wait_for(producer.stop(), timeout=5)
            except (KafkaError, OSError, TimeoutError) as exc:
                log.debug("producer stop failed: %s", exc)


class _single_relay:
    """Only one relay per store publishes: an advisory lock on PostgreSQL, a file
    lock on SQLite (libs.platform.leadership), whatever the number of processes.

    Two relays working one outbox could interleave a stream's events; the
    standby waits for the lock and takes over when the leader goes away.
    """

    def __init__(self, engine: AsyncEngine, name: str, stop: asyncio.Event) -> None:
        self.engine = engine
        self.key = f"outbox-relay:{name}"
        self.stop = stop
        self._conn: AsyncConnection | None = None
        self._sqlite: Leadership | None = None

    async def __aenter__(self) -> bool:
        if not is_postgres(self.engine):
            self._sqlite = Leadership(self.engine, self.key)
            return await self._sqlite.acquire(self.stop)
        self._conn = await self.engine.connect()
        while not self.stop.is_set():
            got = await self._conn.scalar(
                text("SELECT pg_try_advisory_lock(hashtext(:k))"), {"k": self.key}
            )
            await self._conn.commit()
            if got:
                return True
            await _sleep_or_stop(self.stop, 1.0)
        return False

    async def __aexit__(self, *exc: object) -> None:
        if self._sqlite is not None:
            await self._sqlite.release()
        if self._conn is not None:
            # The lock belongs to the session; a pooled connection would keep it.
            await self._conn.execute(text("SELECT pg_advisory_unlock_all()"))
            await self._conn.commit()
            await self._conn.close()


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        pass


async def _wait_any(stop: asyncio.Event, wake: asyncio.Event, seconds: float) -> None:
    waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(wake.wait())]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()
