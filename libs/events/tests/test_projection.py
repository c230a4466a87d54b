"""The projection runtime against real PostgreSQL and the real broker."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from sqlalchemy import inspect, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from libs.events import metrics
from libs.events.envelope import EventEnvelope
from libs.events.fetch_pace import FetchPace
from libs.events.kafka import KafkaSettings, dlq_topic, ensure_topics
from libs.events.projection import (
    LiveProjection,
    ProjectionRunner,
    active_generation,
    checkpoints,
    rebuild,
    serving,
)
from libs.events.store import EventStore, NewEvent
from libs.events.tests.conftest import eventually, relay_for
from libs.events.tests.sample import T0, PoisonPill, VisitTotals, catalog, visit
from testing.consumers import send_retrying


@pytest.fixture
async def store(pg_engine: AsyncEngine) -> EventStore:
    store = EventStore(pg_engine)
    await store.create_tables()
    return store


async def publish_visits(
    store: EventStore, kafka: KafkaSettings, topic: str, count: int, customers: int = 10
) -> None:
    for i in range(count):
        cid = f"c-{i % customers}"
        await store.append("acme", cid, i // customers, [visit(cid, minutes=i % 7 + 1)])
    relay = relay_for(store, kafka, topic)
    while await relay.relay_once():
        pass


def expected_totals(count: int, customers: int = 10) -> dict[str, tuple[int, int]]:
    totals: dict[str, tuple[int, int]] = {}
    for i in range(count):
        minutes, visits = totals.get(f"c-{i % customers}", (0, 0))
        totals[f"c-{i % customers}"] = (minutes + i % 7 + 1, visits + 1)
    return totals


async def snapshot(engine: AsyncEngine, projection: VisitTotals) -> dict[str, tuple[int, int]]:
    async with engine.connect() as conn:
        exists = await conn.run_sync(lambda c: inspect(c).has_table(projection.totals.name))
        return await projection.snapshot(conn) if exists else {}


async def run_until(
    runner: ProjectionRunner,
    engine: AsyncEngine,
    projection: VisitTotals,
    expected: dict[str, tuple[int, int]],
) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))

    async def done() -> bool:
        return await snapshot(engine, projection) == expected

    try:
        await eventually(done, timeout=60)
    finally:
        stop.set()
        await task


async def test_a_projection_applies_every_event(
    store: EventStore, kafka: KafkaSettings, unique: str
) -> None:
    topic = f"crm.sample.{unique}"
    await publish_visits(store, kafka, topic, 200)
    projection = VisitTotals(topics=(topic,))

    await run_until(
        ProjectionRunner(projection, store.engine, kafka, catalog),
        store.engine,
        projection,
        expected_totals(200),
    )

    status = await ProjectionRunner(projection, store.engine, kafka, catalog).status()
    assert status.lag_events == 0
    assert sum(p.end_offset for p in status.partitions) == 200


async def test_the_same_events_delivered_twice_have_no_double_effect(
    store: EventStore, kafka: KafkaSettings, unique: str
) -> None:
    topic = f"crm.sample.{unique}"
    await publish_visits(store, kafka, topic, 100)
    # The relay sends the whole store again, as it would after dying before its delete.
    await relay_for(store, kafka, topic).republish_all()
    projection = VisitTotals(topics=(topic,))
    before = metrics.DUPLICATES_SKIPPED.labels("visit_totals")._value.get()

    await run_until(
        ProjectionRunner(projection, store.engine, kafka, catalog),
        store.engine,
        projection,
        expected_totals(100),
    )
    await asyncio.sleep(0.5)

    assert await snapshot(store.engine, projection) == expected_totals(100)
    assert metrics.DUPLICATES_SKIPPED.labels("visit_totals")._value.get() - before == 100


async def test_a_projector_killed_mid_batch_resumes_to_the_same_read_model(
    store: EventStore, kafka: KafkaSettings, unique: str, pg_url: str
) -> None:
    topic = f"crm.sample.{unique}"
    await publish_visits(store, kafka, topic, 1500)
    projection = VisitTotals(topics=(topic,))
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "libs.events.tests.projector_process",
        pg_url,
        kafka.bootstrap_servers,
        topic,
        env={**os.environ},
    )

    async def some_applied() -> bool:
        totals = await snapshot(store.engine, projection)
        return 0 < sum(v for _, v in totals.values()) < 1500

    await eventually(some_applied, timeout=60, every=0.01)
    await asyncio.sleep(0.15)
    process.send_signal(signal.SIGKILL)
    await process.wait()
    partial = sum(v for _, v in (await snapshot(store.engine, projection)).values())
    assert 0 < partial < 1500, "the kill must land before the projection finished"

    await run_until(
        ProjectionRunner(projection, store.engine, kafka, catalog),
        store.engine,
        projection,
        expected_totals(1500),
    )

    # The same read model as one built without a crash, in a generation of its own.
    clean = VisitTotals(generation=2, topics=(topic,))
    await run_until(
        ProjectionRunner(clean, store.engine, kafka, catalog),
        store.engine,
        clean,
        expected_totals(1500),
    )
    assert await snapshot(store.engine, projection) == await snapshot(store.engine, clean)


async def test_a_poison_message_goes_to_the_dlq_and_the_partition_moves_on(
    store: EventStore, kafka: KafkaSettings, unique: str
) -> None:
    topic = f"crm.sample.{unique}"
    kafka = kafka.model_copy(update={"partitions": 1})  # everything behind the poison, in order
    await ensure_topics(kafka, [topic])
    await store.append("acme", "c-1", 0, [visit("c-1", 1)])
    poison = PoisonPill(customer_id="c-1")
    await store.append(
        "acme", "c-1", 1, [NewEvent.from_domain(poison, partition_key="c-1", occurred_at=T0)]
    )
    relay = relay_for(store, kafka, topic)
    await relay.relay_once()
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers)
    await producer.start()
    await send_retrying(
        producer,
        topic,
        key=b"c-1",
        value=b"{not json",
        headers=[
            ("ce_id", b"x"),
            ("ce_type", b"crm.sample.visit_logged.v2"),
            ("ce_source", b"/x"),
            ("ce_specversion", b"1.0"),
        ],
    )
    await producer.stop()
    await store.append("acme", "c-1", 2, [visit("c-1", 2), visit("c-1", 3)])
    await relay.relay_once()
    projection = VisitTotals(topics=(topic,))

    await run_until(
        ProjectionRunner(projection, store.engine, kafka, catalog),
        store.engine,
        projection,
        {"c-1": (6, 3)},
    )

    dead = AIOKafkaConsumer(
        dlq_topic(topic), bootstrap_servers=kafka.bootstrap_servers, auto_offset_reset="earliest"
    )
    await dead.start()
    try:
        records = [r for rs in (await dead.getmany(timeout_ms=3000)).values() for r in rs]
    finally:
        await dead.stop()
    errors = sorted(dict(r.headers)["dlq_error"].decode() for r in records)
    assert len(errors) == 2
    assert errors[0].startswith("HandlerFailed: RuntimeError: this event cannot be applied")
    assert errors[1].startswith("InvalidEnvelope: value is not JSON")
    assert {dict(r.headers)["dlq_topic"] for r in records} == {topic.encode()}


async def test_types_a_projection_does_not_know_are_counted_and_skipped(
    store: EventStore, kafka: KafkaSettings, unique: str
) -> None:
    topic = f"crm.sample.{unique}"
    kafka = kafka.model_copy(update={"partitions": 1})
    await ensure_topics(kafka, [topic])
    stranger = EventEnvelope(
        id="e-1",
        source="/crm/other",
        type="crm.other.thing_happened.v1",
        subject="c-1",
        time=T0,
        tenantid="acme",
        partitionkey="c-1",
        sequence=1,
        data={"x": 1},
    ).to_kafka()
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers)
    await producer.start()
    await send_retrying(
        producer, topic, key=stranger.key, value=stranger.value, headers=stranger.headers
    )
    await producer.stop()
    await publish_visits(store, kafka, topic, 5, customers=1)
    projection = VisitTotals(topics=(topic,))
    label = metrics.UNKNOWN_EVENTS.labels(projection.key, "crm.other.thing_happened.v1")
    before = label._value.get()

    await run_until(
        ProjectionRunner(projection, store.engine, kafka, catalog),
        store.engine,
        projection,
        expected_totals(5, customers=1),
    )

    assert label._value.get() - before == 1


async def test_a_rebuilt_projection_equals_the_live_one_and_is_swapped_in(
    store: EventStore, kafka: KafkaSettings, unique: str
) -> None:
    topic = f"crm.sample.{unique}"
    await publish_visits(store, kafka, topic, 300)

    def factory(generation: int) -> VisitTotals:
        return VisitTotals(generation, topics=(topic,))

    live = LiveProjection(factory, store.engine, kafka, catalog, generation_check_seconds=0.2)
    stop = asyncio.Event()
    live_task = asyncio.create_task(live.run(stop))
    try:
        await eventually(lambda: _equals(store.engine, factory(1), expected_totals(300)))

        new_generation = await rebuild(factory, store.engine, kafka, catalog)

        assert new_generation == 2
        assert await active_generation(store.engine, "visit_totals") == 2
        assert await snapshot(store.engine, factory(2)) == await snapshot(store.engine, factory(1))
        # The live service follows the swap: new events land in generation 2.
        await publish_visits_more(store, kafka, topic)
        await eventually(lambda: _equals(store.engine, factory(2), expected_after_more()))
    finally:
        stop.set()
        await live_task
    async with store.engine.connect() as conn:
        keys = set(await conn.scalars(select(checkpoints.c.projection)))
    assert keys == {"visit_totals.g1", "visit_totals.g2"}


async def test_the_live_projection_follows_a_swap_though_a_generation_lookup_failed(
    store: EventStore, kafka: KafkaSettings, unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    topic = f"crm.sample.{unique}"
    await publish_visits(store, kafka, topic, 30)

    def factory(generation: int) -> VisitTotals:
        return VisitTotals(generation, topics=(topic,))

    database = {"locked": False, "refused": 0}
    real_lookup = serving.active_generation

    async def lookup(engine: AsyncEngine, name: str) -> int | None:
        if database["locked"]:  # what SQLite raises when locked past its busy timeout
            database["refused"] += 1
            raise OperationalError("BEGIN IMMEDIATE", {}, Exception("database is locked"))
        return await real_lookup(engine, name)

    # Where the live projection looks it up.
    monkeypatch.setattr(serving, "active_generation", lookup)
    live = LiveProjection(factory, store.engine, kafka, catalog, generation_check_seconds=0.1)
    stop = asyncio.Event()
    live_task = asyncio.create_task(live.run(stop))
    try:
        await eventually(lambda: _equals(store.engine, factory(1), expected_totals(30)))
        database["locked"] = True

        async def watcher_refused() -> bool:
            return database["refused"] >= 2

        await eventually(watcher_refused)
        database["locked"] = False

        assert await rebuild(factory, store.engine, kafka, catalog) == 2

        # Still watching: the service follows the swap, new events land in generation 2.
        await publish_visits_more(store, kafka, topic)
        totals = expected_totals(30)
        minutes, visits = totals["c-0"]
        totals["c-0"] = (minutes + 100, visits + 1)
        await eventually(lambda: _equals(store.engine, factory(2), totals))
    finally:
        stop.set()
        await live_task


async def publish_visits_more(store: EventStore, kafka: KafkaSettings, topic: str) -> None:
    version = await store.stream_version("acme", "c-0")
    await store.append("acme", "c-0", version, [visit("c-0", minutes=100)])
    relay = relay_for(store, kafka, topic)
    while await relay.relay_once():
        pass


def expected_after_more() -> dict[str, tuple[int, int]]:
    totals = expected_totals(300)
    minutes, visits = totals["c-0"]
    totals["c-0"] = (minutes + 100, visits + 1)
    return totals


async def _equals(
    engine: AsyncEngine, projection: VisitTotals, expected: dict[str, tuple[int, int]]
) -> bool:
    return await snapshot(engine, projection) == expected


async def test_an_idle_consumer_fetches_with_the_idle_wait_and_wakes_at_the_next_event(
    store: EventStore, kafka: KafkaSettings, unique: str
) -> None:
    """Nothing fetched for ``idle_after_seconds``: its fetches wait the idle wait on the
    broker (a few a second, not fifty); the next record brings back the short wait, and
    nothing is missed across the switch (decision 0107)."""
    topic = f"crm.sample.{unique}"
    await publish_visits(store, kafka, topic, 20)
    pacing = kafka.model_copy(update={"idle_fetch_max_wait_ms": 300, "idle_after_seconds": 0.3})
    projection = VisitTotals(topics=(topic,))
    runner = ProjectionRunner(projection, store.engine, pacing, catalog)
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))

    def pace() -> FetchPace:
        assert runner.consumer is not None and runner.consumer.pace is not None
        return runner.consumer.pace

    async def totals(count: int) -> bool:
        return await snapshot(store.engine, projection) == expected_totals(count)

    try:
        await eventually(lambda: totals(20), timeout=60)

        async def idle() -> bool:
            return pace().idle

        await eventually(idle, timeout=10)
        assert pace().fetch_wait_ms == 300

        for i in range(20, 60):  # 40 more visits, as publish_visits would have made them
            cid = f"c-{i % 10}"
            await store.append("acme", cid, i // 10, [visit(cid, minutes=i % 7 + 1)])
        relay = relay_for(store, kafka, topic)
        while await relay.relay_once():
            pass
        await eventually(lambda: totals(60), timeout=30)
        assert not pace().idle
        assert pace().fetch_wait_ms == kafka.fetch_max_wait_ms
    finally:
        stop.set()
        await task
