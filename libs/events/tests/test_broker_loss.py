"""A broker that loses its topics (the bundled one restarts empty): nothing is lost.

Real PostgreSQL, the real broker, stopped and started again between steps.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy.ext.asyncio import AsyncEngine

from libs.events import metrics
from libs.events.kafka import KafkaSettings, ensure_topics
from libs.events.lag import projection_status
from libs.events.projection import (
    ProjectionRunner,
    RebuildProgress,
    RebuildRefused,
    activate_generation,
    active_generation,
    rebuild,
)
from libs.events.store import EventStore, NewEvent
from libs.events.tests.conftest import eventually, relay_for
from libs.events.tests.sample import T0, PoisonPill, VisitTotals, catalog, visit
from libs.events.tests.test_outbox import read_topic
from libs.events.tests.test_projection import expected_totals, publish_visits, snapshot
from libs.platform.broker import EmbeddedBroker


@pytest.fixture
async def store(pg_engine: AsyncEngine) -> EventStore:
    store = EventStore(pg_engine)
    await store.create_tables()
    return store


async def project(runner: ProjectionRunner, expected: dict[str, tuple[int, int]]) -> None:
    """Run ``runner`` until its read model is ``expected``; fail if it never is."""
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    projection = runner.projection
    assert isinstance(projection, VisitTotals)

    async def done() -> bool:
        return await snapshot(runner.engine, projection) == expected

    try:
        await eventually(done, timeout=30)
    finally:
        stop.set()
        await task


async def append_visits(store: EventStore, customers: list[str], minutes: int) -> int:
    """One visit per customer; the store position before them."""
    before = max((e.position for e in await store.read_all(limit=100_000)), default=0)
    for cid in customers:
        version = await store.stream_version("acme", cid)
        await store.append("acme", cid, version, [visit(cid, minutes=minutes)])
    return before


async def publish_directly(
    store: EventStore, kafka: KafkaSettings, topic: str, after_position: int
) -> None:
    """Publish events appended after ``after_position`` only, keyed as the relay does:
    the topic holds what came after the restart, not the history before it."""
    await ensure_topics(kafka, [topic])
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers)
    await producer.start()
    try:
        for event in await store.read_all(after_position=after_position, limit=100_000):
            record = event.to_envelope("/crm/sample", catalog.schema_url(event.type)).to_kafka()
            await producer.send(topic, key=record.key, value=record.value, headers=record.headers)
        await producer.flush()
    finally:
        await producer.stop()


def restart_empty(broker: EmbeddedBroker) -> None:
    broker.stop()
    broker.start()


def resets(group: str, topic: str) -> float:
    return sum(
        float(metrics.CONSUMER_RESETS.labels(group, topic, reason)._value.get())
        for reason in ("recreated", "offsets_back", "shorter")
    )


def with_more(
    totals: dict[str, tuple[int, int]], customers: list[str], minutes: int
) -> dict[str, tuple[int, int]]:
    totals = dict(totals)
    for cid in customers:
        total, visits = totals.get(cid, (0, 0))
        totals[cid] = (total + minutes, visits + 1)
    return totals


async def test_a_checkpoint_beyond_the_end_of_a_topic_that_came_back_empty_is_read_again(
    store: EventStore, kafka: KafkaSettings, broker: EmbeddedBroker, unique: str
) -> None:
    topic = f"crm.sample.{unique}"
    await publish_visits(store, kafka, topic, 60)
    projection = VisitTotals(topics=(topic,))
    await project(ProjectionRunner(projection, store.engine, kafka, catalog), expected_totals(60))
    before = resets(projection.key, topic)

    restart_empty(broker)
    after = await append_visits(store, ["c-0", "c-1", "c-2"], minutes=50)
    await publish_directly(store, kafka, topic, after)

    # Every partition ends below the checkpoint saved for it (about 20 each).
    expected = with_more(expected_totals(60), ["c-0", "c-1", "c-2"], 50)
    runner = ProjectionRunner(projection, store.engine, kafka, catalog)
    await project(runner, expected)
    assert resets(projection.key, topic) > before

    # Then the relay finds the loss and sends the whole store again: all 63 events
    # reach the projection once more and change nothing.
    duplicates = metrics.DUPLICATES_SKIPPED.labels("visit_totals")
    skipped_before = duplicates._value.get()
    relay = relay_for(store, kafka, topic)
    relay.confirm_loss_seconds = 0.1
    while await relay.relay_once():
        pass
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))

    async def all_seen_again() -> bool:
        return bool(duplicates._value.get() - skipped_before >= 63)

    try:
        await eventually(all_seen_again, timeout=30)
    finally:
        stop.set()
        await task
    assert await snapshot(store.engine, projection) == expected
    assert duplicates._value.get() - skipped_before == 63


async def test_a_topic_refilled_past_the_checkpoint_with_other_events_is_read_again(
    store: EventStore, kafka: KafkaSettings, broker: EmbeddedBroker, unique: str
) -> None:
    topic = f"crm.sample.{unique}"
    await publish_visits(store, kafka, topic, 30)
    projection = VisitTotals(topics=(topic,))
    await project(ProjectionRunner(projection, store.engine, kafka, catalog), expected_totals(30))

    restart_empty(broker)
    newcomers = [f"n-{i}" for i in range(30)] * 3
    after = await append_visits(store, newcomers, minutes=2)
    await publish_directly(store, kafka, topic, after)

    # Each partition now ends beyond its old checkpoint: only the message before the
    # checkpoint (another event) tells the topic is not the one read.
    await project(
        ProjectionRunner(projection, store.engine, kafka, catalog),
        with_more(expected_totals(30), newcomers, 2),
    )


async def test_the_relay_publishes_the_store_again_after_the_broker_restarts_empty(
    store: EventStore, kafka: KafkaSettings, broker: EmbeddedBroker, unique: str
) -> None:
    topic = f"crm.sample.{unique}"
    relay = relay_for(store, kafka, topic)
    relay.verify_every_seconds, relay.confirm_loss_seconds = 0.2, 0.1
    relay.max_backoff_seconds = 0.5
    for i in range(30):
        await store.append("acme", f"c-{i % 3}", i // 3, [visit(f"c-{i % 3}", i)])
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    try:
        assert len(await read_topic(kafka, topic, 30)) == 30

        restart_empty(broker)
        # Nothing new is written: the relay finds the loss by itself.
        republished = await read_topic(kafka, topic, 30)
        await store.append("acme", "c-0", 10, [visit("c-0", 99)])
        everything = await read_topic(kafka, topic, 31)
    finally:
        stop.set()
        await task

    assert len(republished) == 30
    assert len({h["ce_id"] for _, h, _ in everything}) == 31
    # The history is on the new topic before what came after it.
    assert [d["minutes"] for k, _, d in everything if k == b"c-0"] == [*range(0, 30, 3), 99]


async def test_a_relay_started_after_the_broker_lost_its_topic_publishes_the_store_again(
    store: EventStore, kafka: KafkaSettings, broker: EmbeddedBroker, unique: str
) -> None:
    topic = f"crm.sample.{unique}"
    for i in range(20):
        await store.append("acme", f"c-{i % 4}", i // 4, [visit(f"c-{i % 4}", i)])
    assert await relay_for(store, kafka, topic).relay_once() == 20

    restart_empty(broker)
    # Another process now: what was published is known from the service's database.
    relay = relay_for(store, kafka, topic)
    relay.confirm_loss_seconds = 0.1
    while await relay.relay_once():
        pass

    seen = await read_topic(kafka, topic, 20)
    assert sorted(int(str(d["minutes"])) for _, _, d in seen) == list(range(20))


async def test_a_relay_stopped_while_publishing_the_store_again_carries_on_where_it_was(
    store: EventStore, kafka: KafkaSettings, broker: EmbeddedBroker, unique: str
) -> None:
    topic = f"crm.sample.{unique}"
    for i in range(30):
        await store.append("acme", f"c-{i % 3}", i // 3, [visit(f"c-{i % 3}", i)])
    assert await relay_for(store, kafka, topic).relay_once() == 30
    restart_empty(broker)

    first = relay_for(store, kafka, topic)
    first.batch_size, first.confirm_loss_seconds = 10, 0.1
    assert await first.relay_once() == 10  # found the loss, sent the first ten, then stops
    await first.close()
    second = relay_for(store, kafka, topic)
    second.batch_size = 10
    while await second.relay_once():
        pass

    seen = await read_topic(kafka, topic, 30)
    # Each event once: the second relay went on from the eleventh, not from the start.
    assert sorted(int(str(d["minutes"])) for _, _, d in seen) == list(range(30))


async def test_no_status_reads_no_lag_while_the_projection_is_stalled(
    store: EventStore, kafka: KafkaSettings, broker: EmbeddedBroker, unique: str
) -> None:
    topic = f"crm.sample.{unique}"
    await publish_visits(store, kafka, topic, 60)
    projection = VisitTotals(topics=(topic,))
    await project(ProjectionRunner(projection, store.engine, kafka, catalog), expected_totals(60))

    restart_empty(broker)
    after = await append_visits(store, ["c-0", "c-1", "c-2"], minutes=50)
    await publish_directly(store, kafka, topic, after)
    beyond = await projection_status(store.engine, kafka, projection)
    # The same, a minute later, without the projector having moved.
    later = await projection_status(
        store.engine, kafka, projection, now=datetime.now(UTC) + timedelta(minutes=1)
    )

    assert beyond.lag_events == 3
    assert beyond.stalled
    assert beyond.lag_seconds > 0
    assert {p.state for p in beyond.partitions if p.end_offset} == {"beyond_end"}
    assert later.lag_seconds >= 60


async def test_a_projection_behind_that_does_not_move_is_stalled(
    store: EventStore, kafka: KafkaSettings, unique: str
) -> None:
    topic = f"crm.sample.{unique}"
    await publish_visits(store, kafka, topic, 30)
    projection = VisitTotals(topics=(topic,))
    await project(ProjectionRunner(projection, store.engine, kafka, catalog), expected_totals(30))
    await publish_visits_more(store, kafka, topic)

    now = await projection_status(store.engine, kafka, projection)
    later = await projection_status(
        store.engine, kafka, projection, now=datetime.now(UTC) + timedelta(minutes=5)
    )

    assert now.lag_events == 1 and not now.stalled and now.lag_seconds > 0
    assert later.lag_events == 1 and later.stalled and later.lag_seconds >= 300


async def publish_visits_more(store: EventStore, kafka: KafkaSettings, topic: str) -> None:
    await append_visits(store, ["c-0"], minutes=100)
    relay = relay_for(store, kafka, topic)
    while await relay.relay_once():
        pass


async def test_a_rebuild_that_dead_lettered_an_event_is_not_swapped_in(
    store: EventStore, kafka: KafkaSettings, unique: str
) -> None:
    topic = f"crm.sample.{unique}"
    await publish_visits(store, kafka, topic, 40)

    def factory(generation: int) -> VisitTotals:
        return VisitTotals(generation, topics=(topic,))

    await project(ProjectionRunner(factory(1), store.engine, kafka, catalog), expected_totals(40))
    await activate_generation(store.engine, "visit_totals", 1)
    version = await store.stream_version("acme", "c-3")
    poison = NewEvent.from_domain(
        PoisonPill(customer_id="c-3"), partition_key="c-3", occurred_at=T0
    )
    await store.append("acme", "c-3", version, [poison])
    relay = relay_for(store, kafka, topic)
    while await relay.relay_once():
        pass
    reports: list[RebuildProgress] = []

    with pytest.raises(RebuildRefused) as refused:
        await rebuild(factory, store.engine, kafka, catalog, on_progress=reports.append)

    assert refused.value.progress.dead_lettered == 1
    assert "1 events were dead-lettered" in str(refused.value)
    assert await active_generation(store.engine, "visit_totals") == 1
    assert reports and reports[-1].read == reports[-1].target == 41


async def test_a_rebuild_holding_fewer_customers_than_the_active_one_is_not_swapped_in(
    store: EventStore, kafka: KafkaSettings, broker: EmbeddedBroker, unique: str
) -> None:
    topic = f"crm.sample.{unique}"
    await publish_visits(store, kafka, topic, 40)

    def factory(generation: int) -> VisitTotals:
        return VisitTotals(generation, topics=(topic,))

    await project(ProjectionRunner(factory(1), store.engine, kafka, catalog), expected_totals(40))
    await activate_generation(store.engine, "visit_totals", 1)
    restart_empty(broker)
    after = await append_visits(store, ["c-0"], minutes=100)
    await publish_directly(store, kafka, topic, after)  # no relay: the history stays lost

    with pytest.raises(RebuildRefused) as refused:
        await rebuild(factory, store.engine, kafka, catalog, progress_every_seconds=0.1)

    assert "holds 1 where generation 1 holds 10" in str(refused.value)
    assert await active_generation(store.engine, "visit_totals") == 1
    assert await snapshot(store.engine, factory(1)) == expected_totals(40)
