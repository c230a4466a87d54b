"""The outbox relay: publishes every committed event to the service's topic.

Why an outbox table rather than "events after the highest position published":
transactions commit out of order, so position 11 can be visible before
position 10 is. The relay reads what is in the outbox *now*, publishes it in
position order (which is stream order for every stream), and deletes only the
rows it published. A row that commits late is simply there on the next pass.

Delivery is at least once: if the relay dies between publishing and deleting,
the same events go out again and consumers drop them by event id.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from sqlalchemy import delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from libs.events import metrics
from libs.events.db import is_postgres
from libs.events.kafka import KafkaSettings, ensure_topics, new_producer
from libs.events.store import (
    EVENT_COLUMNS,
    EventStore,
    RecordedEvent,
    events,
    outbox,
    recorded_event,
)

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
        batch_size: int = 2000,
        idle_poll_seconds: float = 0.02,
        max_backoff_seconds: float = 5.0,
    ) -> None:
        self.store = store
        self.kafka = kafka
        self.service = service
        self.topic = topic
        self.source = source
        self.schema_url = schema_url
        self.batch_size = batch_size
        self.idle_poll_seconds = idle_poll_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self._producer: AIOKafkaProducer | None = None
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Called after a local append so the relay does not wait for its next poll."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Relay until ``stop`` is set; broker outages are retried with backoff."""
        backoff = 0.1
        async with _single_relay(self.store.engine, self.topic, stop) as leader:
            if not leader:
                return
            while not stop.is_set():
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
                if published == 0:
                    self._wake.clear()
                    await _wait_any(stop, self._wake, self.idle_poll_seconds)
        await self._drop_producer()

    async def close(self) -> None:
        await self._drop_producer()

    async def relay_once(self) -> int:
        """Publish one batch of the outbox; return how many events went out."""
        async with self.store.engine.connect() as conn:
            batch = await self._pending(conn)
            await self._record_backlog(conn)
        if not batch:
            return 0
        await self._publish(batch)
        async with self.store.engine.begin() as conn:
            await conn.execute(
                delete(outbox).where(outbox.c.position.in_([e.position for e in batch]))
            )
        metrics.EVENTS_PUBLISHED.labels(self.topic).inc(len(batch))
        return len(batch)

    async def republish_all(self, *, after_position: int = 0) -> int:
        """Publish the whole store again, in order (to rebuild a lost topic)."""
        count = 0
        while True:
            batch = await self.store.read_all(after_position=after_position, limit=self.batch_size)
            if not batch:
                return count
            await self._publish(batch)
            after_position = batch[-1].position
            count += len(batch)

    async def _pending(self, conn: AsyncConnection) -> list[RecordedEvent]:
        query = (
            select(*EVENT_COLUMNS)
            .select_from(outbox.join(events, outbox.c.position == events.c.position))
            .order_by(outbox.c.position)
            .limit(self.batch_size)
        )
        pending = [recorded_event(r) for r in await conn.execute(query)]
        return await self.store.open_personal_data(conn, pending)

    async def _record_backlog(self, conn: AsyncConnection) -> None:
        row = (await conn.execute(select(func.count(), func.min(outbox.c.enqueued_at)))).one()
        count, oldest = int(row[0]), row[1]
        metrics.OUTBOX_BACKLOG.labels(self.service).set(count)
        age = 0.0
        if oldest is not None:
            if oldest.tzinfo is None:
                oldest = oldest.replace(tzinfo=UTC)
            age = max(0.0, (datetime.now(UTC) - oldest).total_seconds())
        metrics.OUTBOX_OLDEST_AGE.labels(self.service).set(age)

    async def _publish(self, batch: list[RecordedEvent]) -> None:
        producer = await self._ensure_producer()
        sends = []
        for event in batch:
            record = event.to_envelope(self.source, self.schema_url(event.type)).to_kafka()
            sends.append(
                await producer.send(
                    self.topic, key=record.key, value=record.value, headers=record.headers
                )
            )
        # Every send must be acknowledged before the outbox rows go; if any fails
        # the whole batch is sent again (consumers drop the duplicates).
        results = await asyncio.gather(*sends, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

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
        if self._producer is not None:
            producer, self._producer = self._producer, None
            try:
                await asyncio.wait_for(producer.stop(), timeout=5)
            except (KafkaError, OSError, TimeoutError) as exc:
                log.debug("producer stop failed: %s", exc)


class _single_relay:
    """On PostgreSQL, only one relay per store publishes (an advisory lock).

    Two relays working one outbox could interleave a stream's events; the
    standby waits for the lock and takes over when the leader goes away.
    """

    def __init__(self, engine: AsyncEngine, name: str, stop: asyncio.Event) -> None:
        self.engine = engine
        self.key = f"outbox-relay:{name}"
        self.stop = stop
        self._conn: AsyncConnection | None = None

    async def __aenter__(self) -> bool:
        if not is_postgres(self.engine):
            return True
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
