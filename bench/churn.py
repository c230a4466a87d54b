"""Benchmark 12: churn risk (issue 14): scoring a tenant's 100,000 customers as of a
date, and the churn projector's rate beside benchmark 4.

Scoring: a fresh alerts database (the service's Alembic schema) holds N customers of
one tenant with their facts as the projector stores them (orders over two years, a
customer in ten with complaints, interactions for one in four), written with COPY
before the clock starts. Timed: ``ranking.risks_as_of`` as ``GET /api/v1/churn/risks``
runs it with ``as_of`` (every customer ranked, as of a date a year back and as of the
end), with the process's peak resident memory growth. Then the kept ranking (decision
0093): the sweep assessing every customer once (all due: a day's sweeping in one go),
and pages of 50 read by keyset as ``GET /api/v1/churn/risks`` without ``as_of`` reads
them, from positions spread over the whole ranking (p50 and p99).

Projector: N ``OrderPlaced`` events (the pipeline relay's encoding, 1,000 customers, 6
partitions) pre-published; the alerts service's ``ChurnFacts`` on the projection
runtime (as ``services/alerts/app.py`` wires it) consumes until caught up: a fact per
order, then the batch's customers assessed as of now in the batch transaction. Beside
it, in the same run and rotating order, benchmark 4's ``ours``.
"""

from __future__ import annotations

import asyncio
import os
import random
import resource
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
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
from services.alerts import handlers
from services.alerts.api.conventions import cursor_for
from services.alerts.domain.sources import SOURCES, TOPICS
from services.alerts.handlers import ranking
from services.alerts.migrations import FOLDER as MIGRATIONS
from services.alerts.read_model import churn_facts, projection
from services.alerts.settings import Settings

END = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
START = END - timedelta(days=730)


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def _fill(url: str, customers: int) -> int:
    """Customers and facts as the projector would have stored them; the facts' count."""
    rng = random.Random(14)
    engine = create_engine(url)
    await prepare_schema(engine, MIGRATIONS)
    customer_rows, fact_rows = [], []
    for n in range(customers):
        cid = f"c-{n:07d}"
        joined = START + timedelta(days=rng.uniform(0, 700))
        never = churn_facts.NEVER_BOUGHT
        customer_rows.append(
            (TENANT, cid, f"rep-{n % 50}", joined, None, "none", 0, 0, None, never)
        )
        # Buyers at their own rhythm, some stopping along the way.
        at, gap = joined, rng.uniform(10, 120)
        for k in range(rng.randint(1, 12)):
            if at > END:
                break
            ref = f"{cid}-o{k}"
            fact_rows.append((TENANT, uuid.uuid4().hex, cid, "order", at, ref, 100.0, None, False))
            at += timedelta(days=rng.expovariate(1 / gap))
        if n % 10 == 0:
            for k in range(rng.randint(1, 4)):
                when = END - timedelta(days=rng.uniform(0, 90))
                fact_rows.append(
                    (TENANT, uuid.uuid4().hex, cid, "complaint", when, f"t{k}", 0.0, None, False)
                )
        if n % 4 == 0:
            for k in range(rng.randint(1, 6)):
                when = END - timedelta(days=rng.uniform(0, 200))
                fact_rows.append(
                    (TENANT, uuid.uuid4().hex, cid, "interaction", when, f"i{k}", 0.0, None, False)
                )
    async with engine.begin() as conn:
        raw = await conn.get_raw_connection()
        driver: Any = raw.driver_connection
        await driver.copy_records_to_table(
            "churn_customers",
            records=customer_rows,
            columns=[
                "tenant_id",
                "customer_id",
                "owner_id",
                "registered_at",
                "merged_into",
                "level",
                "score",
                "version",
                "open_alert_id",
                "last_order_at",
            ],
        )
        await driver.copy_records_to_table(
            "churn_facts",
            records=fact_rows,
            columns=[
                "tenant_id",
                "event_id",
                "customer_id",
                "kind",
                "at",
                "ref",
                "value",
                "until",
                "flag",
            ],
        )
    async with engine.connect() as conn:
        await conn.exec_driver_sql("ANALYZE churn_facts")
        await conn.exec_driver_sql("ANALYZE churn_customers")
    await engine.dispose()
    return len(fact_rows)


async def run_scoring(customers: int) -> dict[str, Any]:
    async with fresh_database("churn") as url:
        filled = time.perf_counter()
        facts = await _fill(url, customers)
        filled = time.perf_counter() - filled
        engine = create_engine(url)
        out: dict[str, Any] = {
            "customers": customers,
            "facts": facts,
            "fill_seconds": round(filled, 1),
        }
        for label, when in (("year_back", END - timedelta(days=365)), ("end", END)):
            rss = _rss_mb()
            started, cpu = time.perf_counter(), time.process_time()
            async with engine.connect() as conn:
                ranked = await ranking.risks_as_of(conn, TENANT, when)
            seconds = time.perf_counter() - started
            cpu = time.process_time() - cpu
            out[label] = {
                "as_of": when.isoformat(),
                "ranked": len(ranked),
                "seconds": round(seconds, 2),
                # This process's CPU (scoring; PostgreSQL's is apart): steadier than the
                # wall clock on a shared machine.
                "cpu_seconds": round(cpu, 2),
                "customers_per_second": round(len(ranked) / seconds, 1),
                "peak_rss_growth_mb": round(_rss_mb() - rss, 1),
                "high": sum(r.risk.level == "high" for r in ranked),
            }
            del ranked
        out["kept"] = await _kept_ranking(engine, customers)
        await engine.dispose()
    if out["end"]["ranked"] != customers:
        raise RuntimeError(f"ranked {out['end']['ranked']} customers, expected {customers}")
    out["rate"] = out["end"]["customers_per_second"]
    return out


async def _kept_ranking(engine: Any, customers: int, pages: int = 200) -> dict[str, Any]:
    """The sweep's cost to assess everyone once, then the cost of reading a page."""
    alerts = handlers.Alerts(store=EventStore(engine), clock=lambda: END)
    started, cpu = time.perf_counter(), time.process_time()
    await handlers.sweep(alerts)
    sweep_seconds, sweep_cpu = time.perf_counter() - started, time.process_time() - cpu
    # Positions spread over the ranking: one every 500 customers.
    positions: list[churn_facts.RankPosition | None] = [None]
    async with engine.connect() as conn:
        while True:
            page = await ranking.ranking_page(conn, TENANT, END, after=positions[-1], limit=500)
            if not page:
                positions.pop()  # the end: nothing after it
                break
            if len(page) < 500:
                break
            positions.append(ranking.position_of(page[-1].risk, "revenue_at_risk"))
    rng = random.Random(93)
    times = []
    async with engine.connect() as conn:
        for _ in range(pages):
            after = rng.choice(positions)
            started = time.perf_counter()
            page = await ranking.ranking_page(conn, TENANT, END, after=after, limit=50)
            times.append(time.perf_counter() - started)
            if not page:
                raise RuntimeError("an empty page of the kept ranking")
    times.sort()
    return {
        "sweep_seconds": round(sweep_seconds, 2),
        "sweep_cpu_seconds": round(sweep_cpu, 2),
        "sweep_customers_per_second": round(customers / sweep_seconds, 1),
        "pages": pages,
        "page_p50_ms": round(1000 * times[len(times) // 2], 2),
        "page_p99_ms": round(1000 * times[min(len(times) - 1, int(len(times) * 0.99))], 2),
    }


def order_placed(i: int, customers: int = 1000) -> EventEnvelope:
    customer = f"c-{i % customers:06d}"
    placed = END - timedelta(days=(i // customers) * 7 % 700)
    event = OrderPlaced(
        order_id=f"o-{i:08d}", customer_id=customer, currency="CNY", total=10_000, placed_at=placed
    )
    return EventEnvelope(
        id=str(uuid.uuid4()),
        source="/crm/pipeline",
        type=OrderPlaced.type_name,
        subject=event.order_id,
        time=placed,
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
        async with fresh_database("alerts") as url:
            engine = create_engine(url)
            await prepare_schema(engine, MIGRATIONS)
            # As services/alerts/app.py wires it: the tenant's context reused 300 s.
            alerts = handlers.Alerts(
                store=EventStore(engine),
                clock=lambda: END,
                context_seconds=Settings().churn_context_seconds,
            )
            runner = TimedRunner(projection.ChurnFacts(alerts), engine, kafka, SOURCES)
            await runner.create_tables()

            def caught_up() -> bool:
                return all(runner.progress.get(tp, 0) >= end for tp, end in targets.items())

            started = time.perf_counter()
            await asyncio.wait_for(runner.run(asyncio.Event(), until=caught_up), timeout=900)
            finished = time.perf_counter()
            async with engine.connect() as conn:
                stored = await conn.scalar(select(func.count()).select_from(churn_facts.facts))
            await engine.dispose()
    if stored != count:
        raise RuntimeError(f"the churn facts hold {stored} orders, expected {count}")
    first = runner.first_batch_at or started
    return {
        "events": count,
        "seconds": round(finished - first, 3),
        "rate": round(count / (finished - first), 1),
        "rate_with_startup": round(count / (finished - started), 1),
        "startup_seconds": round(first - started, 3),
        "batches": runner.batches,
    }


if __name__ == "__main__":
    import json
    import sys

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    print(json.dumps(asyncio.run(run_scoring(n)), indent=1))


def _spread(times: list[float]) -> dict[str, float]:
    times = sorted(times)
    return {
        "p50_ms": round(1000 * times[len(times) // 2], 2),
        "p99_ms": round(1000 * times[min(len(times) - 1, int(len(times) * 0.99))], 2),
    }


async def run_gateway_pages(customers: int, pages: int = 200) -> dict[str, Any]:
    """The kept ranking at ``customers`` where users meet it (issue 23): the platform as
    ``make run`` starts it, on PostgreSQL (``bench/http.py``); the alerts database filled
    as above and every customer assessed once by the sweep (in this process, against the
    service's database); then pages of 50 from positions spread over the ranking, each
    order (revenue at risk, the default; score), through the gateway, straight to the
    alerts service and in-process on the same database: the two hops' cost beside the
    query's."""
    from bench.http import running_platform, token

    # The service's own sweep stays off: this process sweeps once, timed, and two
    # sweeps of the same customers at once would only contend for their rows.
    os.environ["RUN_SWEEP"] = "false"
    try:
        async with running_platform("churn_pages") as platform:
            return await _pages_through(platform, customers, pages, token(TENANT))
    finally:
        del os.environ["RUN_SWEEP"]


async def _pages_through(
    platform: Any, customers: int, pages: int, bearer: str
) -> dict[str, Any]:
    url = platform.databases["alerts"]
    await _fill(url, customers)
    engine = create_engine(url)
    alerts = handlers.Alerts(store=EventStore(engine), clock=lambda: END)
    started = time.perf_counter()
    await handlers.sweep(alerts)
    out: dict[str, Any] = {
        "customers": customers,
        "sweep_seconds": round(time.perf_counter() - started, 1),
    }
    headers = {"Authorization": f"Bearer {bearer}"}
    rng = random.Random(23)
    orders: tuple[churn_facts.RankOrder, ...] = ("revenue_at_risk", "score")
    for order in orders:
        positions: list[churn_facts.RankPosition | None] = [None]
        async with engine.connect() as conn:
            while True:
                page = await ranking.ranking_page(
                    conn, TENANT, END, order=order, after=positions[-1], limit=500
                )
                if len(page) < 500:
                    break
                positions.append(ranking.position_of(page[-1].risk, order))
            if len(page) < 50:
                # The last position ends the ranking (or leaves a short page): a page
                # from it would not be a page of 50.
                positions.pop()
        chosen = [rng.choice(positions) for _ in range(pages)]
        cursors = [cursor_for(END, p) if p is not None else None for p in chosen]
        paths: dict[str, list[float]] = {"gateway": [], "alerts": [], "in_process": []}
        for name in ("gateway", "alerts"):
            async with httpx.AsyncClient(
                base_url=platform.urls[name], headers=headers, timeout=30
            ) as client:
                for cursor in cursors:
                    params = {"limit": 50, "sort": order}
                    if cursor:
                        params["cursor"] = cursor
                    mark = time.perf_counter()
                    answer = await client.get("/api/v1/churn/risks", params=params)
                    paths[name].append(time.perf_counter() - mark)
                    answer.raise_for_status()
                    if len(answer.json()["items"]) != 50:
                        raise RuntimeError(f"a short page through {name}: {answer.text[:300]}")
        async with engine.connect() as conn:
            for p in chosen:
                mark = time.perf_counter()
                await ranking.ranking_page(conn, TENANT, END, order=order, after=p, limit=50)
                paths["in_process"].append(time.perf_counter() - mark)
        out[order] = {name: _spread(times) for name, times in paths.items()}
    await engine.dispose()
    return out
