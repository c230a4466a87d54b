"""The outbox relay against real PostgreSQL and the real broker."""

from __future__ import annotations

import asyncio
import json
from collections import Counter

from aiokafka import AIOKafkaConsumer
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from libs.events.kafka import KafkaSettings
from libs.events.projection import ProjectionRunner
from libs.events.store import EventStore, NewEvent, outbox
from libs.events.tests.conftest import eventually, relay_for
from libs.events.tests.sample import VisitTotals, catalog, visit
from libs.platform.broker import EmbeddedBroker
from libs.platform.db import create_engine


async def read_topic(
    kafka: KafkaSettings, topic: str, expected: int, timeout: float = 30.0
) -> list[tuple[bytes, dict[str, bytes], dict[str, object]]]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka.bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    seen: list[tuple[bytes, dict[str, bytes], dict[str, object]]] = []
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while len(seen) < expected and asyncio.get_running_loop().time() < deadline:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                seen += [(r.key, dict(r.headers), json.loads(r.value)) for r in records]
        # Anything more than expected would be a duplicate: give it a moment to show.
        for records in (await consumer.getmany(timeout_ms=300)).values():
            seen += [(r.key, dict(r.headers), json.loads(r.value)) for r in records]
    finally:
        await consumer.stop()
    return seen


async def test_relay_publishes_each_event_keyed_by_customer_in_stream_order(
    pg_engine: AsyncEngine, kafka: KafkaSettings, unique: str
) -> None:
    store = EventStore(pg_engine)
    await store.create_tables()
    for minutes in range(1, 6):
        await store.append("acme", "c-1", minutes - 1, [visit("c-1", minutes)])
    await store.append("acme", "c-2", 0, [visit("c-2", 9)])
    topic = f"crm.sample.{unique}"

    published = await relay_for(store, kafka, topic).relay_once()

    seen = await read_topic(kafka, topic, 6)
    assert published == 6
    assert [d["minutes"] for k, _, d in seen if k == b"c-1"] == [1, 2, 3, 4, 5]
    assert [h["ce_sequence"] for k, h, _ in seen if k == b"c-1"] == [b"1", b"2", b"3", b"4", b"5"]
    assert {h["ce_tenantid"] for _, h, _ in seen} == {b"acme"}
    async with pg_engine.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(outbox)) == 0


async def test_an_event_committed_after_a_later_position_is_still_delivered(
    pg_engine: AsyncEngine, kafka: KafkaSettings, unique: str
) -> None:
    store = EventStore(pg_engine)
    await store.create_tables()
    topic = f"crm.sample.{unique}"
    relay = relay_for(store, kafka, topic)

    async with pg_engine.connect() as slow:
        slow_tx = await slow.begin()
        await store.append("acme", "early", 0, [visit("early", 1)], conn=slow)  # lower position
        await store.append("acme", "late", 0, [visit("late", 2)])  # higher position, commits first
        first_pass = await relay.relay_once()
        await slow_tx.commit()
    second_pass = await relay.relay_once()

    seen = await read_topic(kafka, topic, 2)
    assert (first_pass, second_pass) == (1, 1)
    assert sorted(k for k, _, _ in seen) == [b"early", b"late"]


async def test_while_the_broker_is_down_nothing_is_lost_and_all_arrives_once(
    pg_engine: AsyncEngine, broker: EmbeddedBroker, unique: str
) -> None:
    kafka = KafkaSettings(
        bootstrap_servers=broker.bootstrap_servers, partitions=3, request_timeout_ms=2000
    )
    store = EventStore(pg_engine)
    await store.create_tables()
    topic = f"crm.sample.{unique}"
    relay = relay_for(store, kafka, topic)
    relay.max_backoff_seconds = 0.5
    stop = asyncio.Event()
    relay_task = asyncio.create_task(relay.run(stop))
    await store.append("acme", "warm-up", 0, [visit("warm-up")])
    await eventually(lambda: _outbox_empty(pg_engine))

    broker.stop()
    for i in range(1000):
        await store.append("acme", f"c-{i % 50}", i // 50, [visit(f"c-{i % 50}", 1)])
    assert not relay_task.done()
    broker.start()

    projection = VisitTotals(topics=(topic,))
    runner = ProjectionRunner(projection, pg_engine, kafka, catalog)
    projector = asyncio.create_task(runner.run(stop))

    async def all_applied() -> bool:
        async with pg_engine.connect() as conn:
            totals = await projection.snapshot(conn) if await _has_table(conn, projection) else {}
        return sum(v for _, v in totals.values()) >= 1001

    try:
        await eventually(all_applied, timeout=60)
        await asyncio.sleep(0.5)
    finally:
        stop.set()
        await asyncio.gather(relay_task, projector)

    async with pg_engine.connect() as conn:
        totals = await projection.snapshot(conn)
    # The memory broker restarted empty: the relay published the warm-up event again,
    # and every one of the 1,000 appended while it was down arrived exactly once.
    assert totals["warm-up"] == (1, 1)
    assert len(totals) == 51
    assert all(totals[f"c-{i}"] == (20, 20) for i in range(50))
    assert await _outbox_empty(pg_engine)


async def test_a_whole_store_can_be_republished_to_rebuild_a_topic(
    pg_engine: AsyncEngine, kafka: KafkaSettings, unique: str
) -> None:
    store = EventStore(pg_engine)
    await store.create_tables()
    for i in range(30):
        await store.append("acme", f"c-{i % 3}", i // 3, [visit(f"c-{i % 3}", i)])
    relay = relay_for(store, kafka, f"crm.sample.{unique}")
    await relay.relay_once()

    rebuilt = relay_for(store, kafka, f"crm.sample.{unique}.rebuilt")
    republished = await rebuilt.republish_all()

    seen = await read_topic(kafka, f"crm.sample.{unique}.rebuilt", 30)
    assert republished == 30
    per_key = Counter(k for k, _, _ in seen)
    assert per_key == {b"c-0": 10, b"c-1": 10, b"c-2": 10}
    assert [d["minutes"] for k, _, d in seen if k == b"c-1"] == list(range(1, 30, 3))


async def test_events_appended_with_a_correlation_id_carry_it_to_kafka(
    pg_engine: AsyncEngine, kafka: KafkaSettings, unique: str
) -> None:
    store = EventStore(pg_engine)
    await store.create_tables()
    event = visit("c-1")
    traced = NewEvent(
        event.type,
        event.data,
        event.partition_key,
        event.occurred_at,
        correlation_id="req-77",
        causation_id="cmd-5",
    )
    await store.append("acme", "c-1", 0, [traced])
    topic = f"crm.sample.{unique}"

    await relay_for(store, kafka, topic).relay_once()

    [(_, headers, _)] = await read_topic(kafka, topic, 1)
    assert headers["ce_correlationid"] == b"req-77"
    assert headers["ce_causationid"] == b"cmd-5"
    assert headers["ce_dataschema"].endswith(b"crm.sample.visit_logged.v2.json")


async def _outbox_empty(engine: AsyncEngine) -> bool:
    async with engine.connect() as conn:
        return await conn.scalar(select(func.count()).select_from(outbox)) == 0


async def _has_table(conn: object, projection: VisitTotals) -> bool:
    from sqlalchemy import inspect

    return bool(
        await conn.run_sync(  # type: ignore[attr-defined]
            lambda sync: inspect(sync).has_table(projection.totals.name)
        )
    )


async def test_sealed_personal_fields_go_out_in_clear_and_erased_ones_redacted(
    pg_engine: AsyncEngine, kafka: KafkaSettings, unique: str
) -> None:
    from libs.events.vault import PersonalDataPolicy

    policy = PersonalDataPolicy({"crm.sample.visit_logged.v2": {"note": "[erased]"}})
    store = EventStore(pg_engine, personal_data=policy)
    await store.create_tables()
    await store.append("acme", "c-1", 0, [visit("c-1", 1, note="called 王芳")])
    await store.append("acme", "c-2", 0, [visit("c-2", 2, note="called 李娜")])
    topic = f"crm.sample.{unique}"
    await relay_for(store, kafka, topic).relay_once()
    async with pg_engine.begin() as conn:
        await store.erase_personal_data("acme", "c-1", conn=conn)
    rebuilt = f"crm.sample.{unique}.rebuilt"
    await relay_for(store, kafka, rebuilt).republish_all()

    live = {k: d["note"] for k, _, d in await read_topic(kafka, topic, 2)}
    after_erasure = {k: d["note"] for k, _, d in await read_topic(kafka, rebuilt, 2)}
    assert live == {b"c-1": "called 王芳", b"c-2": "called 李娜"}
    assert after_erasure == {b"c-1": "[erased]", b"c-2": "called 李娜"}


async def _events_read(engine: AsyncEngine) -> int:
    """Rows of the events table read so far (by any scan), this connection's included."""
    async with engine.connect() as conn:
        await conn.execute(text("SELECT pg_stat_force_next_flush()"))
        await conn.commit()
    await asyncio.sleep(0.2)  # the flush happens as that connection goes idle
    async with engine.connect() as conn:
        return int(
            await conn.scalar(
                text(
                    "SELECT coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0)"
                    " FROM pg_stat_user_tables WHERE relname = 'events'"
                )
            )
            or 0
        )


async def test_polling_an_empty_outbox_does_not_read_the_published_events(
    pg_url: str, kafka: KafkaSettings, unique: str
) -> None:
    # One pooled connection: every poll runs where PostgreSQL cached its plans, the
    # first of them while the tables were empty.
    engine = create_engine(pg_url, pool_size=1)
    try:
        store = EventStore(engine)
        await store.create_tables()
        relay = relay_for(store, kafka, f"crm.sample.{unique}")
        for _ in range(10):
            assert await relay.relay_once() == 0
        async with engine.begin() as conn:  # 20,000 events, published long ago
            await conn.execute(
                text(
                    "INSERT INTO events (event_id, tenant_id, stream_id, version, type,"
                    " partition_key, data, occurred_at, recorded_at)"
                    " SELECT 'e-' || n, 'acme', 'c-' || n, 1, 'VisitLogged', 'c-' || n,"
                    " '{\"minutes\": 1}', now(), now() FROM generate_series(1, 20000) AS n"
                )
            )
        before = await _events_read(engine)

        polls = 10
        for _ in range(polls):
            assert await relay.relay_once() == 0

        # A merge join may look at the first event; a stale plan read all 20,000 each time.
        assert await _events_read(engine) - before <= polls
    finally:
        await engine.dispose()


async def test_an_idle_relay_looks_less_often_and_its_own_appends_wake_it_at_once(
    pg_engine: AsyncEngine, kafka: KafkaSettings, unique: str
) -> None:
    """Each empty look doubles the wait up to ``idle_max_poll_seconds`` (decision 0107);
    an append in its own process wakes it whatever the wait."""
    store = EventStore(pg_engine)
    await store.create_tables()
    topic = f"crm.sample.{unique}"
    relay = relay_for(store, kafka, topic)
    relay.idle_poll_seconds, relay.idle_max_poll_seconds = 0.01, 3.0
    looks = 0
    look = relay.relay_once

    async def counted() -> int:
        nonlocal looks
        looks += 1
        return await look()

    relay.relay_once = counted  # type: ignore[method-assign]
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    try:
        await asyncio.sleep(2.7)
        # 0.01, 0.02, 0.04, ... 1.28, 2.56: nine looks in 2.7 seconds, not 270.
        assert 3 <= looks <= 15, looks

        # Now early in a wait of 2.56 s: the append's wake-up ends it.
        await store.append("acme", "c-1", 0, [visit("c-1", 3)])
        relay.wake()

        async def published() -> bool:
            async with pg_engine.connect() as conn:
                return await conn.scalar(select(func.count()).select_from(outbox)) == 0

        await eventually(published, timeout=1.0, every=0.02)
        seen = await read_topic(kafka, topic, 1)
        assert [d["minutes"] for _, _, d in seen] == [3]
    finally:
        stop.set()
        await task
