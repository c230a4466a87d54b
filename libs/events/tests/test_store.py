"""The event store, on PostgreSQL and on SQLite."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from libs.events.store import ConcurrencyConflict, EventStore, outbox
from libs.events.tests.sample import visit


@pytest.fixture
async def store(any_engine: AsyncEngine) -> EventStore:
    store = EventStore(any_engine)
    await store.create_tables()
    return store


async def test_appended_events_read_back_in_stream_order(store: EventStore) -> None:
    version = await store.append("t1", "c-1", 0, [visit("c-1", 1), visit("c-1", 2)])
    version = await store.append("t1", "c-1", version, [visit("c-1", 3)])

    stream = await store.read_stream("t1", "c-1")

    assert version == 3
    assert [e.version for e in stream] == [1, 2, 3]
    assert [e.data["minutes"] for e in stream] == [1, 2, 3]
    assert stream[0].occurred_at.tzinfo is not None


async def test_stale_expected_version_is_a_conflict_and_writes_nothing(store: EventStore) -> None:
    await store.append("t1", "c-1", 0, [visit("c-1")])

    with pytest.raises(ConcurrencyConflict):
        await store.append("t1", "c-1", 0, [visit("c-1"), visit("c-1")])

    assert await store.stream_version("t1", "c-1") == 1


async def test_a_version_the_stream_never_reached_is_a_conflict(store: EventStore) -> None:
    await store.append("t1", "c-1", 0, [visit("c-1")])

    with pytest.raises(ConcurrencyConflict):
        await store.append("t1", "c-1", 5, [visit("c-1")])

    assert [e.version for e in await store.read_stream("t1", "c-1")] == [1]


async def test_two_concurrent_appends_at_the_same_version_exactly_one_wins(
    store: EventStore,
) -> None:
    await store.append("t1", "c-1", 0, [visit("c-1")])

    results = await asyncio.gather(
        *(store.append("t1", "c-1", 1, [visit("c-1", minutes=i)]) for i in range(8)),
        return_exceptions=True,
    )

    assert sum(1 for r in results if r == 2) == 1
    assert sum(1 for r in results if isinstance(r, ConcurrencyConflict)) == 7
    assert [e.version for e in await store.read_stream("t1", "c-1")] == [1, 2]


async def test_streams_are_separate_per_tenant(store: EventStore) -> None:
    await store.append("t1", "c-1", 0, [visit("c-1")])
    await store.append("t2", "c-1", 0, [visit("c-1")])

    assert len(await store.read_stream("t1", "c-1")) == 1
    assert len(await store.read_stream("t2", "c-1")) == 1


async def test_every_append_lands_in_the_outbox_in_the_same_transaction(store: EventStore) -> None:
    await store.append("t1", "c-1", 0, [visit("c-1"), visit("c-1")])
    with pytest.raises(ConcurrencyConflict):
        await store.append("t1", "c-1", 0, [visit("c-1")])

    async with store.engine.connect() as conn:
        queued = await conn.scalar(select(func.count()).select_from(outbox))
    assert queued == 2


async def test_read_all_follows_positions(store: EventStore) -> None:
    await store.append("t1", "a", 0, [visit("a")])
    await store.append("t1", "b", 0, [visit("b")])
    await store.append("t1", "a", 1, [visit("a")])

    everything = await store.read_all()
    after_first = await store.read_all(after_position=everything[0].position)

    assert [(e.stream_id, e.version) for e in everything] == [("a", 1), ("b", 1), ("a", 2)]
    assert [(e.stream_id, e.version) for e in after_first] == [("b", 1), ("a", 2)]
