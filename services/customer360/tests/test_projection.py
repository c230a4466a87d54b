"""The 360 projection against real PostgreSQL and the real broker."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from libs.events.catalog.contacts import (
    ConsentChanged,
    CustomerMerged,
    CustomerMergedInto,
    CustomerRegistered,
    CustomerTagged,
    CustomFieldDefined,
    InteractionLogged,
    KeyContactChanged,
    OwnerChanged,
    PersonalDataErased,
    ProfileChanged,
)
from libs.events.consumer import ReceivedEvent
from libs.events.envelope import EventEnvelope
from libs.events.kafka import KafkaSettings
from libs.events.projection import active_generation, rebuild
from services.customer360.domain.sources import catalog
from services.customer360.domain.view import TIMELINE_LENGTH
from services.customer360.read_model.applied import listen
from services.customer360.read_model.reader import Customer360Reader
from services.customer360.read_model.writer import Customer360Projection, projection_factory
from services.customer360.tests.conftest import (
    T0,
    ContactsTopic,
    CustomerStream,
    RunningProjector,
    eventually,
    snapshot,
)

PERSONAL = ("Zhang Wei", "zhang.wei@example.com", "+8613800138000", "1988-02-29", "spring fair",
            "wants a discount")


def register(stream: CustomerStream, name: str = "Zhang Wei", **more: Any) -> EventEnvelope:
    fields: dict[str, Any] = {
        "customer_id": stream.customer_id,
        "tenant_id": stream.tenant_id,
        "kind": "person",
        "name": name,
        "registered_at": T0,
    }
    fields.update(more)
    return stream(CustomerRegistered.model_validate(fields))


def full_history(stream: CustomerStream) -> list[EventEnvelope]:
    cid = stream.customer_id
    return [
        register(stream, email="zhang.wei@example.com", phone="+8613800138000",
                 birthday="1988-02-29", owner_id="u-1", tags=["lead"],
                 attributes={"source": "spring fair"}),
        stream(CustomerTagged(customer_id=cid, tag="vip")),
        stream(OwnerChanged(customer_id=cid, from_owner_id="u-1", to_owner_id="u-2")),
        stream(KeyContactChanged(customer_id=cid, role="assistant", previous_contact_id=None,
                                 contact_id="p-7")),
        stream(InteractionLogged(customer_id=cid, interaction_id="i-1", channel="wechat",
                                 direction="inbound", summary="Zhang Wei wants a discount",
                                 by="u-2", occurred_at=T0 + timedelta(hours=1))),
        stream(ConsentChanged(customer_id=cid, channel="sms", granted=True, source="web form",
                              at=T0 + timedelta(hours=2))),
    ]


async def view_of(projector: RunningProjector, tenant: str, customer_id: str) -> dict[str, Any]:
    view = await projector.reader.view(tenant, customer_id)
    assert view is not None, f"no 360 view of {customer_id}"
    return view.model_dump(mode="json")


async def test_the_view_shows_what_the_contacts_service_published(
    projector: RunningProjector, contacts: ContactsTopic
) -> None:
    stream = CustomerStream("acme")
    # A tenant-level event on the same topic: nothing to do with any customer's view.
    tenant_event = EventEnvelope(
        id="cf-1", source="/crm/contacts", type=CustomFieldDefined.type_name, subject="acme",
        time=T0, tenantid="acme", partitionkey="acme", sequence=1,
        data=CustomFieldDefined(name="source", type="text").model_dump(mode="json"),
    )
    await contacts.publish(tenant_event, *full_history(stream))

    await projector.until_version("acme", stream.customer_id, 6)

    view = await view_of(projector, "acme", stream.customer_id)
    assert view["profile"]["name"] == "Zhang Wei"
    assert view["profile"]["email"] == "zhang.wei@example.com"
    assert view["profile"]["birthday"] == "1988-02-29"
    assert view["tags"] == ["lead", "vip"]
    assert view["owner_id"] == "u-2"
    assert view["key_contacts"] == {"assistant": "p-7"}
    assert view["consent"]["sms"]["granted"] is True
    assert view["interaction_count"] == 1
    assert view["last_interaction"]["summary"] == "Zhang Wei wants a discount"
    assert [i["interaction_id"] for i in view["recent_interactions"]] == ["i-1"]
    assert [e["type"].split(".")[2] for e in view["timeline"]] == [
        "consent_changed", "interaction_logged", "key_contact_changed", "owner_changed",
        "customer_tagged", "customer_registered",
    ]
    assert view["timeline"][-1]["summary"] == "Registered person Zhang Wei"
    for section in ("deals", "orders", "tickets", "alerts"):
        assert view[section] == []
    assert view["loyalty"] is None
    assert view["freshness"]["version"] == 6
    assert view["freshness"]["position"]["topic"] == "crm.contacts.events"
    assert view["freshness"]["updated_at"] == "2026-03-02T09:06:00Z"


async def test_a_merged_duplicate_serves_the_survivors_view_with_both_histories(
    projector: RunningProjector, contacts: ContactsTopic
) -> None:
    survivor, duplicate = CustomerStream("acme"), CustomerStream("acme")
    await contacts.publish(
        register(survivor, email="zhang.wei@example.com"),
        register(duplicate, phone="+8613800138000", tags=["wechat"]),
        duplicate(InteractionLogged(customer_id=duplicate.customer_id, interaction_id="i-d",
                                    channel="sms", direction="outbound", summary="promo",
                                    by="u-1", occurred_at=T0)),
        survivor(CustomerMerged(customer_id=survivor.customer_id,
                                duplicate_id=duplicate.customer_id, phone="+8613800138000",
                                tags=["wechat"], interaction_count=1, last_interaction_at=T0)),
        duplicate(CustomerMergedInto(customer_id=duplicate.customer_id,
                                     survivor_id=survivor.customer_id)),
    )
    await projector.until_version("acme", survivor.customer_id, 2)
    await projector.until_version("acme", duplicate.customer_id, 3)

    through_duplicate = await view_of(projector, "acme", duplicate.customer_id)
    direct = await view_of(projector, "acme", survivor.customer_id)

    assert through_duplicate["customer_id"] == survivor.customer_id
    assert through_duplicate["requested_id"] == duplicate.customer_id
    assert {**through_duplicate, "requested_id": None} == {**direct, "requested_id": None}
    assert direct["merged_ids"] == [duplicate.customer_id]
    assert direct["profile"]["phone"] == "+8613800138000"
    assert direct["tags"] == ["wechat"]
    assert direct["interaction_count"] == 1
    assert [i["interaction_id"] for i in direct["recent_interactions"]] == ["i-d"]
    origins = {(e["customer_id"], e["type"].split(".")[2]) for e in direct["timeline"]}
    assert origins == {
        (survivor.customer_id, "customer_registered"),
        (survivor.customer_id, "customer_merged"),
        (duplicate.customer_id, "customer_registered"),
        (duplicate.customer_id, "interaction_logged"),
        (duplicate.customer_id, "customer_merged_into"),
    }


async def test_erasure_removes_personal_data_from_the_view_the_timeline_and_the_tables(
    projector: RunningProjector, contacts: ContactsTopic, pg_engine: AsyncEngine
) -> None:
    stream = CustomerStream("acme")
    history = full_history(stream)
    history.append(stream(ProfileChanged(customer_id=stream.customer_id, name="Zhang Wei",
                                         email="zhang.wei@example.com")))
    await contacts.publish(*history)
    await projector.until_version("acme", stream.customer_id, len(history))
    assert "Zhang Wei" in json.dumps(await view_of(projector, "acme", stream.customer_id))

    await contacts.publish(stream(PersonalDataErased(customer_id=stream.customer_id,
                                                     erased_at=T0 + timedelta(days=1),
                                                     by="u-admin")))
    await projector.until_version("acme", stream.customer_id, len(history) + 1)

    view = await view_of(projector, "acme", stream.customer_id)
    assert view["erased"] is True
    assert view["profile"]["name"] == ""
    assert view["profile"]["email"] is None
    assert view["profile"]["attributes"] == {}
    assert view["tags"] == ["lead", "vip"]
    assert len(view["timeline"]) == len(history) + 1
    assert view["timeline"][0]["summary"] == "Personal data erased by u-admin"
    assert view["recent_interactions"][0]["summary"] == ""
    assert_forgotten(json.dumps(view))
    # Not just hidden: gone from every row the projection keeps.
    at_rest = await snapshot(pg_engine, await projector.reader.projection())
    assert_forgotten(json.dumps(at_rest, default=str))


async def test_erasing_a_survivor_forgets_the_duplicates_its_view_shows(
    projector: RunningProjector, contacts: ContactsTopic, pg_engine: AsyncEngine
) -> None:
    survivor, duplicate = CustomerStream("acme"), CustomerStream("acme")
    await contacts.publish(
        register(survivor),
        register(duplicate, email="zhang.wei@example.com"),
        survivor(CustomerMerged(customer_id=survivor.customer_id,
                                duplicate_id=duplicate.customer_id,
                                email="zhang.wei@example.com")),
        duplicate(CustomerMergedInto(customer_id=duplicate.customer_id,
                                     survivor_id=survivor.customer_id)),
        survivor(PersonalDataErased(customer_id=survivor.customer_id, erased_at=T0, by="u-a")),
    )
    await projector.until_version("acme", survivor.customer_id, 3)
    await projector.until_version("acme", duplicate.customer_id, 2)

    view = await view_of(projector, "acme", duplicate.customer_id)

    assert view["erased"] is True
    assert len(view["timeline"]) == 5
    assert_forgotten(json.dumps(view))
    assert_forgotten(json.dumps(await snapshot(pg_engine, await projector.reader.projection()),
                                default=str))


async def test_redelivered_and_stale_events_have_no_double_effect(
    projector: RunningProjector, contacts: ContactsTopic
) -> None:
    stream = CustomerStream("acme")
    history = full_history(stream)
    await contacts.publish(*history)
    # The relay sends everything again (it died before deleting its outbox rows), and
    # old events come back under new ids (a republish from a restored store).
    await contacts.publish(
        *history, replace(history[1], id="tag-again"), replace(history[4], id="call-again")
    )
    marker = stream(CustomerTagged(customer_id=stream.customer_id, tag="done"))
    await contacts.publish(marker)

    await projector.until_version("acme", stream.customer_id, marker.sequence)

    view = await view_of(projector, "acme", stream.customer_id)
    assert view["interaction_count"] == 1
    assert len(view["recent_interactions"]) == 1
    assert len(view["timeline"]) == len(history) + 1
    assert len({e["event_id"] for e in view["timeline"]}) == len(view["timeline"])
    assert view["tags"] == ["done", "lead", "vip"]


async def test_waiting_for_a_version_returns_as_soon_as_it_lands_and_times_out_otherwise(
    projector: RunningProjector, contacts: ContactsTopic
) -> None:
    stream = CustomerStream("acme")
    await contacts.publish(register(stream))
    await projector.until_version("acme", stream.customer_id, 1)
    loop = asyncio.get_running_loop()

    waiting = asyncio.create_task(
        projector.reader.wait_for_version("acme", stream.customer_id, 2, timeout=15)
    )
    await asyncio.sleep(0.5)
    assert not waiting.done()
    published_at = loop.time()
    await contacts.publish(stream(CustomerTagged(customer_id=stream.customer_id, tag="vip")))
    reached = await waiting
    seen_after = loop.time() - published_at

    assert reached.reached and reached.version == 2
    assert seen_after < 5.0, "the wait must end when the version lands, not at its timeout"

    missed = await projector.reader.wait_for_version("acme", stream.customer_id, 3, timeout=0.3)

    assert not missed.reached
    assert missed.version == 2
    assert 0.3 <= missed.waited_seconds < 1.0

    unknown = await projector.reader.wait_for_version("acme", "nobody", 1, timeout=0.1)
    assert (unknown.reached, unknown.version) == (False, None)


async def test_a_waiting_read_is_woken_by_the_commit_instead_of_polling(
    projector: RunningProjector, contacts: ContactsTopic
) -> None:
    # A reader that hears the projector's commits (PostgreSQL NOTIFY) and would look
    # on its own only every 60 s: the version can only arrive by the notification.
    reader = Customer360Reader(projector.engine, safety_seconds=60.0)
    stop = asyncio.Event()
    listening = asyncio.create_task(listen(projector.engine, reader.signal, stop))
    reads = 0
    counted = reader.version_of

    async def version_of(tenant_id: str, customer_id: str) -> int | None:
        nonlocal reads
        reads += 1
        return await counted(tenant_id, customer_id)

    reader.version_of = version_of  # type: ignore[method-assign]
    try:
        async def heard() -> bool:
            return reader.signal.listening

        await eventually(heard)
        stream = CustomerStream("acme")
        other = CustomerStream("acme")
        waiting = asyncio.create_task(
            reader.wait_for_version("acme", stream.customer_id, 1, timeout=30)
        )
        async def first_read_done() -> bool:
            return reads >= 1

        await eventually(first_read_done)
        # Another customer's batch wakes no one else.
        await contacts.publish(register(other))
        await projector.until_version("acme", other.customer_id, 1)
        assert reads == 1 and not waiting.done()

        await contacts.publish(register(stream))
        # Without the notification it would only end at its 30 s timeout.
        reached = await asyncio.wait_for(waiting, timeout=10)
    finally:
        stop.set()
        await listening

    assert reached.reached and reached.version == 1
    assert reads == 2  # before the commit, and once woken


async def test_tenants_never_see_each_others_customers(
    projector: RunningProjector, contacts: ContactsTopic
) -> None:
    # The same id in two tenants (an import of the same file, say): two customers.
    ours, theirs = CustomerStream("acme", "c-1"), CustomerStream("globex", "c-1")
    only_theirs = CustomerStream("globex")
    await contacts.publish(
        register(ours, name="Ours"),
        register(theirs, name="Theirs"),
        register(only_theirs, name="Only theirs"),
        theirs(CustomerTagged(customer_id="c-1", tag="globex-only")),
    )
    await projector.until_version("globex", "c-1", 2)
    await projector.until_version("globex", only_theirs.customer_id, 1)
    await projector.until_version("acme", "c-1", 1)

    assert (await view_of(projector, "acme", "c-1"))["profile"]["name"] == "Ours"
    assert (await view_of(projector, "acme", "c-1"))["tags"] == []
    assert (await view_of(projector, "globex", "c-1"))["tags"] == ["globex-only"]
    assert await projector.reader.view("acme", only_theirs.customer_id) is None


async def test_a_rebuild_equals_the_live_view_and_is_swapped_in(
    projector: RunningProjector, contacts: ContactsTopic, pg_engine: AsyncEngine,
    kafka: KafkaSettings,
) -> None:
    streams = [CustomerStream("acme") for _ in range(6)]
    envelopes = [e for s in streams for e in full_history(s)]
    survivor, duplicate = streams[0], streams[1]
    envelopes += [
        survivor(CustomerMerged(customer_id=survivor.customer_id,
                                duplicate_id=duplicate.customer_id, interaction_count=1)),
        duplicate(CustomerMergedInto(customer_id=duplicate.customer_id,
                                     survivor_id=survivor.customer_id)),
        streams[2](PersonalDataErased(customer_id=streams[2].customer_id, erased_at=T0,
                                      by="u-a")),
    ]
    await contacts.publish(*envelopes)
    for s in streams:
        await projector.until_version("acme", s.customer_id, s.version)
    live = await snapshot(pg_engine, Customer360Projection(1))

    # What `crm rebuild customer360` does.
    generation = await rebuild(projection_factory, pg_engine, kafka, catalog, timeout_seconds=60)

    assert generation == 2
    assert await active_generation(pg_engine, "customer360") == 2
    assert await snapshot(pg_engine, Customer360Projection(2)) == live
    # The live projector and the readers follow the swap.
    late = streams[3](CustomerTagged(customer_id=streams[3].customer_id, tag="after-rebuild"))
    await contacts.publish(late)

    async def served_by_generation_2() -> bool:
        view = await projector.reader.view("acme", streams[3].customer_id)
        return view is not None and "after-rebuild" in view.tags \
            and view.freshness.projection.generation == 2

    await eventually(served_by_generation_2)


async def test_the_projection_runs_on_sqlite_too(
    sqlite_engine: AsyncEngine, kafka: KafkaSettings, contacts: ContactsTopic
) -> None:
    # The embedded default (make run) keeps read models in SQLite.
    running = RunningProjector(sqlite_engine, kafka)
    await running.start()
    try:
        survivor, duplicate = CustomerStream("acme"), CustomerStream("acme")
        await contacts.publish(
            *full_history(survivor),
            register(duplicate),
            survivor(CustomerMerged(customer_id=survivor.customer_id,
                                    duplicate_id=duplicate.customer_id)),
            duplicate(CustomerMergedInto(customer_id=duplicate.customer_id,
                                         survivor_id=survivor.customer_id)),
        )
        await running.until_version("acme", survivor.customer_id, 7)
        await running.until_version("acme", duplicate.customer_id, 2)

        view = await view_of(running, "acme", duplicate.customer_id)
        assert view["customer_id"] == survivor.customer_id
        assert view["tags"] == ["lead", "vip"]
        assert len(view["timeline"]) == 9
    finally:
        await running.close()


def assert_forgotten(text: str) -> None:
    for value in PERSONAL:
        assert value not in text, f"{value!r} survived the erasure"


async def test_a_full_timeline_reads_the_same_in_one_statement_as_line_by_line(
    projector: RunningProjector, contacts: ContactsTopic
) -> None:
    # More lines than the timeline keeps, several at the same minute (the order is
    # then by version): the one-statement read must keep the same lines, in order.
    stream = CustomerStream("acme")
    cid = stream.customer_id
    registered = register(stream)
    tags = [
        stream(CustomerTagged(customer_id=cid, tag=f"t{n}"), minutes=2 + n // 3)
        for n in range(TIMELINE_LENGTH + 10)
    ]
    await contacts.publish(registered, *tags)
    await projector.until_version("acme", cid, TIMELINE_LENGTH + 11)

    view = await projector.reader.view("acme", cid)
    projection = await projector.reader.projection()
    async with projector.reader.engine.connect() as conn:
        lines = await projection.queries.timeline_of(conn, "acme", [cid])

    assert view is not None
    assert len(view.timeline) == TIMELINE_LENGTH
    assert [(i.event_id, i.type, i.time, i.customer_id, i.summary) for i in view.timeline] == [
        (line["event_id"], line["type"], line["occurred_at"], line["customer_id"], line["summary"])
        for line in lines
    ]
    assert view.timeline[0].time.utcoffset() == timedelta(0)
    assert view.timeline[0].summary.endswith(f"t{TIMELINE_LENGTH + 9}")


async def test_a_batch_folds_to_the_same_tables_as_its_events_one_by_one(
    pg_engine: AsyncEngine,
) -> None:
    # Generation 1 takes each batch whole (apply_many); generation 2 the same events
    # one at a time (apply). Batches mix new and known customers, a redelivered
    # version, several events of one customer, and a merge and an erasure (which send
    # their batch down the event-by-event path).
    a, b, dup = CustomerStream("acme"), CustomerStream("acme"), CustomerStream("acme")
    first = [*full_history(a), register(b, name="Li Lei"), register(dup, name="Lei Li")]
    redelivered = replace(first[1], id="another-id-same-version")
    second = [
        redelivered,
        b(CustomerTagged(customer_id=b.customer_id, tag="vip")),
        a(CustomerTagged(customer_id=a.customer_id, tag="late")),
    ]
    third = [
        b(CustomerMerged(customer_id=b.customer_id, duplicate_id=dup.customer_id)),
        dup(CustomerMergedInto(customer_id=dup.customer_id, survivor_id=b.customer_id)),
        a(PersonalDataErased(customer_id=a.customer_id, erased_at=T0, by="u-a")),
    ]
    fourth = [b(CustomerTagged(customer_id=b.customer_id, tag="after-merge"))]
    batches = [
        [received(envelope, offset) for offset, envelope in enumerate(batch)]
        for batch in (first, second, third, fourth)
    ]
    batched, single = projection_factory(1), projection_factory(2)
    async with pg_engine.begin() as conn:
        await conn.run_sync(batched.metadata.create_all)
        await conn.run_sync(single.metadata.create_all)

    for batch in batches:
        async with pg_engine.begin() as conn:
            await batched.apply_many(conn, batch)
        async with pg_engine.begin() as conn:
            for event in batch:
                await single.apply(conn, event)

    folded, one_by_one = await snapshot(pg_engine, batched), await snapshot(pg_engine, single)
    assert folded == one_by_one
    customers = folded["customer360_customers"]
    assert len(customers) == 3
    tags = {row["customer_id"]: row["tags"] for row in customers}
    assert set(tags[b.customer_id]) == {"vip", "after-merge"}
    assert "late" in tags[a.customer_id]


def received(envelope: EventEnvelope, offset: int) -> ReceivedEvent:
    event = catalog.decode(envelope.type, envelope.data)
    return ReceivedEvent(envelope, event, "crm.contacts.events", 0, offset)


async def test_imported_history_reads_as_it_happened(
    projector: RunningProjector, contacts: ContactsTopic
) -> None:
    # Recorded today (the envelopes' time is T0 + n minutes), it happened years ago.
    stream = CustomerStream("acme")
    cid = stream.customer_id
    registered_at = T0 - timedelta(days=5 * 365)
    last_call = T0 - timedelta(days=30)
    first_call = T0 - timedelta(days=4 * 365)
    await contacts.publish(
        register(stream, registered_at=registered_at),
        stream(InteractionLogged(customer_id=cid, interaction_id="i-2", channel="phone",
                                 direction="inbound", summary="", by="u-1",
                                 occurred_at=last_call)),
        # Logged after the newer call: it still reads before it.
        stream(InteractionLogged(customer_id=cid, interaction_id="i-1", channel="email",
                                 direction="outbound", summary="", by="u-1",
                                 occurred_at=first_call)),
        stream(CustomerTagged(customer_id=cid, tag="imported")),
    )
    await projector.until_version("acme", cid, 4)

    view = await view_of(projector, "acme", cid)
    assert [(line["type"].split(".")[2], line["time"]) for line in view["timeline"]] == [
        ("customer_tagged", (T0 + timedelta(minutes=4)).isoformat().replace("+00:00", "Z")),
        ("interaction_logged", last_call.isoformat().replace("+00:00", "Z")),
        ("interaction_logged", first_call.isoformat().replace("+00:00", "Z")),
        ("customer_registered", registered_at.isoformat().replace("+00:00", "Z")),
    ]


async def test_every_timeline_keeps_its_newest_lines_on_postgresql(pg_engine: AsyncEngine) -> None:
    await every_timeline_keeps_its_newest_lines(pg_engine)


async def test_every_timeline_keeps_its_newest_lines_on_sqlite(sqlite_engine: AsyncEngine) -> None:
    await every_timeline_keeps_its_newest_lines(sqlite_engine)


async def every_timeline_keeps_its_newest_lines(engine: AsyncEngine) -> None:
    # Two known customers with a full timeline each gain lines in one batch: both are
    # trimmed (one statement for the batch), each to its own newest lines, and the
    # event-by-event path keeps the same lines.
    streams = [CustomerStream("acme"), CustomerStream("acme")]

    def tags(stream: CustomerStream, count: int) -> list[EventEnvelope]:
        return [
            stream(CustomerTagged(customer_id=stream.customer_id, tag=f"t{stream.version}"))
            for _ in range(count)
        ]

    first = [e for s in streams for e in [register(s), *tags(s, TIMELINE_LENGTH - 1)]]
    second = [e for s in streams for e in tags(s, 5)]
    batched, single = projection_factory(1), projection_factory(2)
    async with engine.begin() as conn:
        await conn.run_sync(batched.metadata.create_all)
        await conn.run_sync(single.metadata.create_all)
    offset = 0
    for batch in (first, second):
        events = [received(envelope, offset + n) for n, envelope in enumerate(batch)]
        offset += len(batch)
        async with engine.begin() as conn:
            await batched.apply_many(conn, events)
        async with engine.begin() as conn:
            for event in events:
                await single.apply(conn, event)

    folded, one_by_one = await snapshot(engine, batched), await snapshot(engine, single)
    assert folded["customer360_timeline"] == one_by_one["customer360_timeline"]
    for stream in streams:
        kept = sorted(
            line["sequence"]
            for line in folded["customer360_timeline"]
            if line["customer_id"] == stream.customer_id
        )
        assert kept == list(range(6, TIMELINE_LENGTH + 6))  # the 5 oldest went
