"""Benchmark 4: a projection, broker -> PostgreSQL read model.

N events (the relay's exact encoding, 1000 customers, 6 partitions) are published
before the clock starts; then a ``ProjectionRunner`` with ``BenchTotals`` (the
VisitTotals shape: UPDATE per event, INSERT for a new customer) consumes until its
progress reaches the end of every partition. Reported: the rate from the first
applied batch to caught up (steady), and from ``run()`` to caught up (with the
consumer-group join). Side by side, ``raw-consume`` reads the same topic with a
bare aiokafka consumer (no decoding, no database): the broker's ceiling.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from bench.common import BenchTotals, broker, catalog, envelope, fresh_database, prefill
from libs.events.consumer import Progress, ReceivedEvent
from libs.events.kafka import KafkaSettings, ensure_topics
from libs.events.projection import ProjectionRunner, end_offsets
from libs.platform.db import create_engine

PARTITIONS = 6


async def publish(kafka: KafkaSettings, topic: str, count: int) -> None:
    await ensure_topics(kafka, [topic])
    await prefill(kafka, topic, (envelope(i, i % 1000, i // 1000 + 1) for i in range(count)))


class TimedRunner(ProjectionRunner):
    first_batch_at: float | None = None
    batches = 0

    async def apply_batch(self, received: Sequence[ReceivedEvent], progress: Progress) -> None:
        if self.first_batch_at is None and received:
            self.first_batch_at = time.perf_counter()
        await super().apply_batch(received, progress)
        self.batches += 1


async def run_ours(count: int) -> dict[str, Any]:
    with broker() as running:
        kafka = KafkaSettings(bootstrap_servers=running.bootstrap_servers, partitions=PARTITIONS)
        topic = f"crm.bench.proj.{uuid.uuid4().hex[:8]}"
        await publish(kafka, topic, count)
        targets = await end_offsets(kafka, [topic])
        async with fresh_database("projection") as url:
            engine = create_engine(url)
            projection = BenchTotals(topics=(topic,))
            runner = TimedRunner(projection, engine, kafka, catalog)
            await runner.create_tables()

            def caught_up() -> bool:
                return all(runner.progress.get(tp, 0) >= end for tp, end in targets.items())

            started = time.perf_counter()
            await asyncio.wait_for(runner.run(asyncio.Event(), until=caught_up), timeout=600)
            finished = time.perf_counter()
            async with engine.connect() as conn:
                totals = await conn.execute(
                    projection.totals.select().with_only_columns(
                        projection.totals.c.visits))
                visits = sum(r[0] for r in totals)
            await engine.dispose()
    if visits != count:
        raise RuntimeError(f"read model counts {visits} visits, expected {count}")
    first = runner.first_batch_at or started
    return {"events": count, "seconds": round(finished - first, 3),
            "rate": round(count / (finished - first), 1),
            "rate_with_startup": round(count / (finished - started), 1),
            "startup_seconds": round(first - started, 3), "batches": runner.batches}


async def run_raw_consume(count: int) -> dict[str, Any]:
    with broker() as running:
        kafka = KafkaSettings(bootstrap_servers=running.bootstrap_servers, partitions=PARTITIONS)
        topic = f"crm.bench.rawc.{uuid.uuid4().hex[:8]}"
        await publish(kafka, topic, count)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=kafka.bootstrap_servers, enable_auto_commit=False,
            auto_offset_reset="earliest", max_partition_fetch_bytes=4 * 1024 * 1024)
        await consumer.start()
        try:
            partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            seen, started = 0, time.perf_counter()
            while seen < count:
                batches = await consumer.getmany(timeout_ms=100, max_records=1000)
                seen += sum(len(v) for v in batches.values())
            seconds = time.perf_counter() - started
        finally:
            await consumer.stop()
    return {"events": seen, "seconds": round(seconds, 3), "rate": round(seen / seconds, 1)}
