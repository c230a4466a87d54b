"""Benchmark 12: analytics (issue 17): the projector's rate, and the time to answer a
cohort table and a segment count for a large tenant.

* ``projector``: N ``OrderPlaced`` events (the pipeline relay's encoding, 1,000
  customers, 6 partitions) published before the clock starts; the analytics projection
  on the projection runtime (``AnalyticsProjection``, rows folded per batch) consumes
  until caught up. Beside it, in rotating order, benchmark 4's ``ours``.
* ``queries``: a tenant of C customers and O orders (1% cancelled, 2% refunded) written
  straight into the projection's tables by SQL (``generate_series``: the rows the
  projector would write, without publishing a million events through the broker first);
  then, as of the end of the history: the monthly retention table of every cohort, the
  members of a built-in segment (``vip``), and of a saved filter (tags and spend), each
  through the same handler the API calls. Every answer is checked against SQL counts.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from statistics import median
from typing import Any

from sqlalchemy import func, select, text

from bench.common import TENANT, broker, fresh_database, prefill
from bench.projector import PARTITIONS, TimedRunner
from libs.events.catalog.analytics import AnalyticsSettings, SegmentFilter
from libs.events.catalog.pipeline import OrderPlaced
from libs.events.envelope import EventEnvelope
from libs.events.kafka import KafkaSettings, ensure_topics, service_topic
from libs.events.projection import end_offsets
from libs.events.store import EventStore
from libs.platform.db import create_engine
from libs.platform.migrations import prepare_schema
from services.analytics.domain.sources import SOURCES, TOPICS
from services.analytics.handlers import Analytics, Window
from services.analytics.handlers.figures import compute
from services.analytics.handlers.segments import customers_as_of, members_as_of
from services.analytics.migrations import FOLDER as MIGRATIONS
from services.analytics.read_model import segment_list
from services.analytics.read_model.projection import AnalyticsProjection
from services.analytics.read_model.tables import Tables

CUSTOMERS = 1000
START = datetime(2024, 1, 1, tzinfo=UTC)
DAYS = 730
AS_OF = START + timedelta(days=DAYS)
SETTINGS = AnalyticsSettings(vip_spend_from=140_000, growth_spend_from=100_000)


def order_placed(i: int) -> EventEnvelope:
    customer = f"c-{i % CUSTOMERS:06d}"
    placed_at = START + timedelta(days=(i * 7919) % DAYS)
    event = OrderPlaced(
        order_id=f"o-{i:08d}",
        customer_id=customer,
        currency="CNY",
        total=10_000 + (i % 50) * 100,
        placed_at=placed_at,
    )
    return EventEnvelope(
        id=str(uuid.uuid4()),
        source="/crm/pipeline",
        type=OrderPlaced.type_name,
        subject=event.order_id,
        time=placed_at,
        tenantid=TENANT,
        partitionkey=customer,
        sequence=1,
        data=event.model_dump(mode="json"),
    )


async def run_projector(count: int) -> dict[str, Any]:
    with broker() as running:
        kafka = KafkaSettings(bootstrap_servers=running.bootstrap_servers, partitions=PARTITIONS)
        topic = service_topic("pipeline")
        await ensure_topics(kafka, [service_topic(t) for t in TOPICS])
        await prefill(kafka, topic, (order_placed(i) for i in range(count)))
        targets = await end_offsets(kafka, [topic])
        async with fresh_database("analytics") as url:
            engine = create_engine(url)
            await prepare_schema(engine, MIGRATIONS)
            projection = AnalyticsProjection(1)
            runner = TimedRunner(projection, engine, kafka, SOURCES)
            await runner.create_tables()

            def caught_up() -> bool:
                return all(runner.progress.get(tp, 0) >= end for tp, end in targets.items())

            started = time.perf_counter()
            await asyncio.wait_for(runner.run(asyncio.Event(), until=caught_up), timeout=600)
            finished = time.perf_counter()
            async with engine.connect() as conn:
                orders = await conn.scalar(
                    select(func.count()).select_from(projection.tables.orders)
                )
            await engine.dispose()
    if orders != count:
        raise RuntimeError(f"the projection holds {orders} orders, expected {count}")
    first = runner.first_batch_at or started
    return {
        "events": count,
        "seconds": round(finished - first, 3),
        "rate": round(count / (finished - first), 1),
        "rate_with_startup": round(count / (finished - started), 1),
        "startup_seconds": round(first - started, 3),
        "batches": runner.batches,
    }


FILL = """
INSERT INTO {customers} (tenant_id, customer_id, registered_at, merged_into)
SELECT :tenant, 'c-' || lpad(i::text, 7, '0'),
       CAST(:start AS timestamptz) + (i % 365) * interval '1 day', NULL
FROM generate_series(0, :customers - 1) AS i;

INSERT INTO {profile} (tenant_id, event_id, attribute, customer_id, at, value)
SELECT :tenant, 'r-' || i, a.name, 'c-' || lpad(i::text, 7, '0'),
       CAST(:start AS timestamptz) + (i % 365) * interval '1 day',
       CASE a.name WHEN 'kind' THEN 'person' WHEN 'owner' THEN 'u-' || (i % 50)
                   ELSE CASE WHEN i % 10 = 0 THEN '1' END END
FROM generate_series(0, :customers - 1) AS i,
     (VALUES ('kind'), ('owner'), ('tag:b2b')) AS a(name);

INSERT INTO {orders} (tenant_id, order_id, customer_id, placed_at, month, week, total,
                      cancelled_at)
SELECT :tenant, 'o-' || i, 'c-' || lpad((i % :customers)::text, 7, '0'), p.at,
       date_trunc('month', p.at AT TIME ZONE 'UTC')::date,
       date_trunc('week', p.at AT TIME ZONE 'UTC')::date,
       10000 + (i % 50) * 100,
       CASE WHEN i % 100 = 0 THEN p.at + interval '1 day' END
FROM generate_series(0, :orders - 1) AS i,
     LATERAL (SELECT CAST(:start AS timestamptz) + ((i::bigint * 7919) % :days) * interval '1 day'
                     + (i % 86400) * interval '1 second' AS at) AS p;

INSERT INTO {refunds} (tenant_id, refund_id, order_id, customer_id, at, amount)
SELECT tenant_id, 'rf-' || order_id, order_id, customer_id, placed_at + interval '3 days',
       total / 2
FROM {orders} WHERE tenant_id = :tenant AND substr(order_id, 3)::bigint % 50 = 1;
"""


async def run_queries(customers: int, orders: int, reps: int) -> dict[str, Any]:
    async with fresh_database("analytics-queries") as url:
        engine = create_engine(url)
        await prepare_schema(engine, MIGRATIONS)
        t = Tables.of(1)
        async with engine.begin() as conn:
            await conn.run_sync(t.customers.metadata.create_all)
            for statement in FILL.split(";\n"):
                if statement.strip():
                    await conn.execute(
                        text(
                            statement.format(
                                customers=t.customers.name,
                                profile=t.profile.name,
                                orders=t.orders.name,
                                refunds=t.refunds.name,
                            )
                        ),
                        {
                            "tenant": TENANT,
                            "start": START,
                            "customers": customers,
                            "orders": orders,
                            "days": DAYS,
                        },
                    )
            await conn.execute(text(f"ANALYZE {t.orders.name}"))
            await conn.execute(text(f"ANALYZE {t.refunds.name}"))
            await conn.execute(text(f"ANALYZE {t.profile.name}"))
            await segment_list.save_segment(
                conn,
                TENANT,
                "b2b-spenders",
                SegmentFilter(tags_all=["b2b"], total_spent_min=100_000),
                1,
                AS_OF,
                "bench",
            )
            # About the top tenth of spenders (ten orders of 100-149 each, on average).
            await segment_list.save_settings(conn, TENANT, SETTINGS, 1, AS_OF)
        analytics = Analytics(EventStore(engine), clock=lambda: AS_OF)
        window = Window(None, AS_OF, AS_OF)
        timings: dict[str, list[float]] = {
            "cohort table": [],
            "segment count (vip)": [],
            "segment count (saved filter)": [],
        }
        answers: dict[str, Any] = {}
        for _ in range(reps):
            started = time.perf_counter()
            answers["cohorts"] = await compute(
                analytics, TENANT, "retention", window, {"grain": "month", "customers": False}
            )
            timings["cohort table"].append(time.perf_counter() - started)
            for label, name in (
                ("segment count (vip)", "vip"),
                ("segment count (saved filter)", "b2b-spenders"),
            ):
                started = time.perf_counter()
                async with engine.connect() as conn:
                    answers[name] = len(await members_as_of(conn, analytics, TENANT, name, AS_OF))
                timings[label].append(time.perf_counter() - started)
        async with engine.connect() as conn:
            buyers = await conn.scalar(
                select(func.count(func.distinct(t.orders.c.customer_id))).where(
                    t.orders.c.cancelled_at.is_(None) | (t.orders.c.cancelled_at > AS_OF)
                )
            )
            everyone = await customers_as_of(conn, t, TENANT, AS_OF)
        await engine.dispose()
    if answers["cohorts"].summary["customers"] != buyers:
        raise RuntimeError(
            f"cohorts hold {answers['cohorts'].summary['customers']} customers, expected {buyers}"
        )
    vip = sum(1 for s in everyone.sales.values() if s.lifetime_net >= SETTINGS.vip_spend_from)
    if answers["vip"] != vip:
        raise RuntimeError(f"vip holds {answers['vip']}, expected {vip}")
    return {
        "customers": customers,
        "orders": orders,
        "cohorts": answers["cohorts"].summary["cohorts"],
        "vip_members": answers["vip"],
        "saved_filter_members": answers["b2b-spenders"],
        "seconds": {k: round(median(v), 3) for k, v in timings.items()},
    }
