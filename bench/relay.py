"""Benchmark 3: the outbox relay, store -> broker.

The outbox is pre-filled (one SQL statement) with N events of 300 bytes for 1000
customers, then ``OutboxRelay.relay_once`` runs in a loop until the outbox is
empty. Side by side, ``raw-publish`` sends the very same Kafka records (built
once, before the clock starts) with the same producer settings, in batches of the
relay's size (one aiokafka record batch per partition, ``send_batch``), waiting for
every ack per batch: the ceiling the broker and aiokafka set on this machine, with
no database at all.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import asyncpg
from aiokafka.partitioner import DefaultPartitioner

from bench.common import EVENT_TYPE, NOTE, T0, TENANT, broker, fresh_database
from libs.events.kafka import KafkaSettings, ensure_topics, new_producer
from libs.events.outbox import OutboxRelay
from libs.events.store import EventStore, RecordedEvent
from libs.platform.db import create_engine

PREFILL = """
INSERT INTO events (event_id, tenant_id, stream_id, version, type, partition_key, data,
                    occurred_at, recorded_at)
SELECT gen_random_uuid()::text, $1, c, g / 1000 + 1, $2, c,
       jsonb_build_object('customer_id', c, 'minutes', 7, 'note', $3::text,
                          'sent_at', 1767605400.123456),
       $4::timestamptz, now()
FROM generate_series(0, $5::int - 1) AS g,
     LATERAL (SELECT 'c-' || lpad((g % 1000)::text, 6, '0') AS c) AS k
ORDER BY g
"""


async def prefill(url: str, count: int) -> None:
    engine = create_engine(url)
    await EventStore(engine).create_tables()
    await engine.dispose()
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(PREFILL, TENANT, EVENT_TYPE, NOTE, T0, count)
        await conn.execute("INSERT INTO outbox SELECT position, recorded_at FROM events")
        await conn.execute("ANALYZE events")
        await conn.execute("ANALYZE outbox")
    finally:
        await conn.close()


async def run_ours(count: int, batch_size: int = 5000) -> dict[str, Any]:
    async with fresh_database("relay") as url:
        await prefill(url, count)
        engine = create_engine(url)
        with broker() as running:
            kafka = KafkaSettings(bootstrap_servers=running.bootstrap_servers)
            relay = OutboxRelay(EventStore(engine), kafka, service="bench",
                                topic=f"crm.bench.relay.{uuid.uuid4().hex[:8]}",
                                source="/crm/bench", batch_size=batch_size)
            # Producer start and topic creation are not throughput: do them first.
            await relay._ensure_producer()
            started = time.perf_counter()
            published = 0
            passes = 0
            while (n := await relay.relay_once()) > 0:
                published += n
                passes += 1
            seconds = time.perf_counter() - started
            await relay._drop_producer()
        await engine.dispose()
    if published != count:
        raise RuntimeError(f"relay published {published} of {count}")
    return {"events": published, "seconds": round(seconds, 3),
            "rate": round(published / seconds, 1), "passes": passes}


async def run_raw_publish(count: int, batch_size: int = 2000) -> dict[str, Any]:
    from bench.common import envelope

    records = [
        RecordedEvent(i + 1, e.id, TENANT, e.subject, e.sequence, e.type, e.partitionkey,
                      e.data, T0, T0).to_envelope("/crm/bench").to_kafka()
        for i, e in ((i, envelope(i, i % 1000, i // 1000 + 1)) for i in range(count))
    ]
    with broker() as running:
        kafka = KafkaSettings(bootstrap_servers=running.bootstrap_servers)
        topic = f"crm.bench.raw.{uuid.uuid4().hex[:8]}"
        await ensure_topics(kafka, [topic])
        producer = new_producer(kafka, client_id="bench-raw")
        await producer.start()
        try:
            partitions = sorted(await producer.partitions_for(topic))
            partitioner = DefaultPartitioner()
            started = time.perf_counter()
            for lo in range(0, count, batch_size):
                builders: dict[int, Any] = {}
                futures = []
                for r in records[lo:lo + batch_size]:
                    p = partitioner(r.key, partitions, partitions)
                    builder = builders.get(p) or builders.setdefault(p, producer.create_batch())
                    if builder.append(timestamp=None, key=r.key, value=r.value,
                                      headers=r.headers) is None:
                        futures.append(await producer.send_batch(builder, topic, partition=p))
                        builder = builders[p] = producer.create_batch()
                        builder.append(timestamp=None, key=r.key, value=r.value,
                                       headers=r.headers)
                for p, builder in builders.items():
                    futures.append(await producer.send_batch(builder, topic, partition=p))
                await asyncio.gather(*futures)
            seconds = time.perf_counter() - started
        finally:
            await producer.stop()
    return {"events": count, "seconds": round(seconds, 3), "rate": round(count / seconds, 1)}
