"""Benchmark 11: loyalty's ledger, orders -> points (issue 13).

N ``OrderPlaced`` events (the pipeline relay's encoding, 1,000 customers of one tenant,
6 partitions) are published before the clock starts; then loyalty's own reaction
(``Earning`` on the projection runtime, with ``SOURCES`` and the service's Alembic
schema, as ``services/loyalty/app.py`` wires it) consumes until its progress reaches
the end of every partition. Each event is one ledger command; a run of them in one
batch is decided together (``services/loyalty/handlers/batch.py``: lock the run's
accounts, load their ledgers and the rules once, decide each command, append and record
them in a few statements), in the runtime's batch transaction. Reported like benchmark 4:
the rate from the first applied batch to caught up, and with the consumer-group join.
Every order must have earned exactly one ledger line.

Side by side, in the same run and rotating order, benchmark 4's ``ours``
(``bench/projector.py``: the runtime with a projection folded into one upsert per
batch): the ratio says what the ledger's per-event work costs against the runtime's
own ceiling.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select

from bench.common import TENANT, broker, fresh_database, prefill
from bench.projector import PARTITIONS, TimedRunner
from libs.events.catalog.pipeline import OrderPlaced
from libs.events.envelope import EventEnvelope
from libs.events.kafka import KafkaSettings, ensure_topics, service_topic
from libs.events.projection import end_offsets
from libs.events.store import EventStore
from libs.platform.db import create_engine
from libs.platform.migrations import prepare_schema
from services.loyalty import read_model
from services.loyalty.handlers import Loyalty
from services.loyalty.handlers.reactions import SOURCES, Earning
from services.loyalty.migrations import FOLDER as MIGRATIONS

CUSTOMERS = 1000
PLACED_AT = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
EARNED = "crm.loyalty.points_earned.v1"


def order_placed(i: int) -> EventEnvelope:
    customer = f"c-{i % CUSTOMERS:06d}"
    event = OrderPlaced(order_id=f"o-{i:08d}", customer_id=customer, currency="CNY",
                        total=10_000 + (i % 50) * 100, placed_at=PLACED_AT)
    return EventEnvelope(
        id=str(uuid.uuid4()), source="/crm/pipeline", type=OrderPlaced.type_name,
        subject=event.order_id, time=PLACED_AT, tenantid=TENANT, partitionkey=customer,
        sequence=1, data=event.model_dump(mode="json"),
    )


async def publish_orders(kafka: KafkaSettings, count: int) -> str:
    topic = service_topic("pipeline")
    # Earning reads contacts' and tickets' topics too: all exist before it subscribes.
    await ensure_topics(kafka, [topic, service_topic("contacts"), service_topic("tickets")])
    await prefill(kafka, topic, (order_placed(i) for i in range(count)))
    return topic


async def run_earning(count: int) -> dict[str, Any]:
    with broker() as running:
        kafka = KafkaSettings(bootstrap_servers=running.bootstrap_servers, partitions=PARTITIONS)
        topic = await publish_orders(kafka, count)
        targets = await end_offsets(kafka, [topic])
        async with fresh_database("loyalty") as url:
            engine = create_engine(url)
            await prepare_schema(engine, MIGRATIONS)
            runner = TimedRunner(Earning(Loyalty(store=EventStore(engine))), engine, kafka,
                                 SOURCES)
            await runner.create_tables()

            def caught_up() -> bool:
                return all(runner.progress.get(tp, 0) >= end for tp, end in targets.items())

            started = time.perf_counter()
            await asyncio.wait_for(runner.run(asyncio.Event(), until=caught_up), timeout=600)
            finished = time.perf_counter()
            async with engine.connect() as conn:
                lines = await conn.scalar(
                    select(func.count()).select_from(read_model.lines)
                    .where(read_model.lines.c.type == EARNED))
                accounts = await conn.scalar(select(func.count())
                                             .select_from(read_model.accounts))
            await engine.dispose()
    if lines != count:
        raise RuntimeError(f"the ledgers hold {lines} earned lines, expected {count}")
    first = runner.first_batch_at or started
    return {"events": count, "seconds": round(finished - first, 3),
            "rate": round(count / (finished - first), 1),
            "rate_with_startup": round(count / (finished - started), 1),
            "startup_seconds": round(first - started, 3), "batches": runner.batches,
            "accounts": accounts}
