"""Crypto-shredding: personal fields are sealed in the history; erasure makes them unreadable."""

from __future__ import annotations

import json

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from libs.events.store import EventStore, NewEvent, events
from libs.events.tests.sample import T0, VisitLogged
from libs.events.vault import PersonalDataPolicy

POLICY = PersonalDataPolicy({"crm.sample.visit_logged.v2": {"note": "[erased]"}})


def noted(customer_id: str, note: str) -> NewEvent:
    return NewEvent.from_domain(
        VisitLogged(customer_id=customer_id, minutes=3, note=note),
        partition_key=customer_id,
        occurred_at=T0,
    )


async def raw_data(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as conn:
        return [
            json.dumps(d, ensure_ascii=False) for d in await conn.scalars(select(events.c.data))
        ]


async def test_personal_fields_are_stored_sealed_and_read_back_in_clear(
    any_engine: AsyncEngine,
) -> None:
    store = EventStore(any_engine, personal_data=POLICY)
    await store.create_tables()

    await store.append("acme", "c-1", 0, [noted("c-1", "met 王芳 at home")])

    assert not any("王芳" in row for row in await raw_data(any_engine))
    [event] = await store.read_stream("acme", "c-1")
    assert event.data["note"] == "met 王芳 at home"
    assert event.data["minutes"] == 3


async def test_after_erasure_the_history_reads_redacted_and_others_are_untouched(
    any_engine: AsyncEngine,
) -> None:
    store = EventStore(any_engine, personal_data=POLICY)
    await store.create_tables()
    await store.append("acme", "c-1", 0, [noted("c-1", "secret one")])
    await store.append("acme", "c-2", 0, [noted("c-2", "secret two")])

    async with any_engine.begin() as conn:
        await store.erase_personal_data("acme", "c-1", conn=conn)

    [erased] = await store.read_stream("acme", "c-1")
    [kept] = await store.read_stream("acme", "c-2")
    assert erased.data["note"] == "[erased]"
    assert erased.data["minutes"] == 3  # what is not personal stays
    assert kept.data["note"] == "secret two"
    assert [e.data["note"] for e in await store.read_all()] == ["[erased]", "secret two"]


async def test_nothing_personal_is_written_for_an_erased_subject(any_engine: AsyncEngine) -> None:
    store = EventStore(any_engine, personal_data=POLICY)
    await store.create_tables()
    await store.append("acme", "c-1", 0, [noted("c-1", "first")])
    async with any_engine.begin() as conn:
        await store.erase_personal_data("acme", "c-1", conn=conn)

    await store.append("acme", "c-1", 1, [noted("c-1", "written after erasure")])

    assert not any("written after erasure" in row for row in await raw_data(any_engine))
    assert [e.data["note"] for e in await store.read_stream("acme", "c-1")] == ["[erased]"] * 2


async def test_a_tenant_key_never_opens_another_tenants_data(any_engine: AsyncEngine) -> None:
    store = EventStore(any_engine, personal_data=POLICY)
    await store.create_tables()
    await store.append("acme", "c-1", 0, [noted("c-1", "acme's")])
    await store.append("globex", "c-1", 0, [noted("c-1", "globex's")])
    async with any_engine.begin() as conn:
        await store.erase_personal_data("acme", "c-1", conn=conn)

    assert (await store.read_stream("globex", "c-1"))[0].data["note"] == "globex's"
    assert (await store.read_stream("acme", "c-1"))[0].data["note"] == "[erased]"
