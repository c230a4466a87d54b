"""The customers a service knows (``libs.events.known_customers``): the projection of
contacts' events and the directory that asks contacts when the topic lags. Real
PostgreSQL and SQLite; contacts is a stand-in behind ``httpx.MockTransport``."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any, ClassVar

import httpx
import pytest
from sqlalchemy import Boolean, Column, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from libs.events.catalog import DomainEvent
from libs.events.catalog.contacts import (
    CustomerMerged,
    CustomerMergedInto,
    CustomerRegistered,
    CustomerTagged,
    CustomerUntagged,
    PersonalDataErased,
)
from libs.events.consumer import ReceivedEvent
from libs.events.envelope import EventEnvelope
from libs.events.known_customers import (
    ContactsUnavailable,
    CustomerDirectory,
    KnownCustomer,
    KnownCustomers,
    UnknownCustomer,
)
from libs.events.projection import activate_generation

T0 = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
URL = "http://contacts"


class TaggedCustomers(KnownCustomers):
    """A service that keeps tags and an erased flag, and forgets on erasure."""

    name = "sample_customers"
    keeps_tags: ClassVar[bool] = True

    def __init__(self, generation: int = 1) -> None:
        super().__init__(generation)
        self.forgotten: list[str] = []
        self.moved: list[tuple[str, str]] = []

    def own_columns(self) -> list[Column[Any]]:
        return [Column("erased", Boolean, nullable=False, default=False)]

    def erased_values(self, erased: PersonalDataErased) -> dict[str, Any]:
        return {"erased": True}

    async def merged(
        self, conn: AsyncConnection, tenant_id: str, merged: CustomerMergedInto, at: datetime
    ) -> None:
        self.moved.append((merged.customer_id, merged.survivor_id))

    async def forget(self, conn: AsyncConnection, tenant_id: str, customer_id: str) -> None:
        self.forgotten.append(customer_id)


class IdsOnly(KnownCustomers):
    name = "sample_ids"


def received(event: DomainEvent, tenant_id: str = "acme", offset: int = 0) -> ReceivedEvent:
    envelope = EventEnvelope(
        id=f"e-{offset}",
        source="/crm/contacts",
        type=event.type_name,
        subject=getattr(event, "customer_id", ""),
        time=T0,
        tenantid=tenant_id,
        partitionkey=getattr(event, "customer_id", ""),
        sequence=offset,
        data=event.model_dump(mode="json"),
    )
    return ReceivedEvent(envelope, event, "crm.contacts.events", 0, offset)


def registered(customer_id: str, tags: list[str] | None = None) -> CustomerRegistered:
    return CustomerRegistered(
        customer_id=customer_id,
        tenant_id="acme",
        kind="person",
        name="Li",
        tags=tags or [],
        registered_at=T0,
    )


async def apply(engine: AsyncEngine, projection: KnownCustomers, *events: DomainEvent) -> None:
    async with engine.begin() as conn:
        await projection.apply_many(conn, [received(e, offset=i) for i, e in enumerate(events)])


async def find(engine: AsyncEngine, projection: KnownCustomers, customer_id: str) -> Any:
    async with engine.connect() as conn:
        return await projection.find(conn, "acme", customer_id)


@pytest.fixture
async def tagged(any_engine: AsyncEngine) -> AsyncIterator[TaggedCustomers]:
    projection = TaggedCustomers()
    async with any_engine.begin() as conn:
        await conn.run_sync(projection.metadata.create_all)
    yield projection


async def test_tags_follow_registration_tagging_and_what_a_merge_absorbed(
    any_engine: AsyncEngine, tagged: TaggedCustomers
) -> None:
    await apply(
        any_engine,
        tagged,
        registered("c-1", ["vip", "b2b"]),
        CustomerTagged(customer_id="c-1", tag="new"),
        CustomerUntagged(customer_id="c-1", tag="b2b"),
        CustomerTagged(customer_id="nobody", tag="x"),  # not registered: nothing to tag
        CustomerMerged(customer_id="c-1", duplicate_id="c-2", tags=["wholesale"]),
    )
    tags = ("new", "vip", "wholesale")
    assert await find(any_engine, tagged, "c-1") == KnownCustomer("c-1", tags)
    assert await find(any_engine, tagged, "nobody") is None
    async with any_engine.connect() as conn:
        assert await tagged.find(conn, "globex", "c-1") is None  # another tenant's


async def test_a_merged_duplicate_counts_for_its_survivor_whatever_arrives_first(
    any_engine: AsyncEngine, tagged: TaggedCustomers
) -> None:
    # The duplicate's stream (and its merge) on one partition, the survivor's on another.
    await apply(
        any_engine,
        tagged,
        registered("dup"),
        CustomerMergedInto(customer_id="dup", survivor_id="keep"),
        registered("keep", ["vip"]),
    )
    assert await find(any_engine, tagged, "dup") == KnownCustomer("keep", ("vip",))
    assert tagged.moved == [("dup", "keep")]
    async with any_engine.connect() as conn:
        assert await tagged.resolve_many(conn, "acme", ["dup", "keep", "gone"]) == {
            "dup": "keep",
            "keep": "keep",
        }
        assert await tagged.records_of(conn, "acme", "keep") == ["keep", "dup"]


async def test_erasure_marks_the_customer_and_asks_the_service_to_forget(
    any_engine: AsyncEngine, tagged: TaggedCustomers
) -> None:
    erased = PersonalDataErased(customer_id="c-1", erased_at=T0, by="admin")
    await apply(any_engine, tagged, registered("c-1"), erased)
    async with any_engine.connect() as conn:
        flag = await conn.scalar(
            select(tagged.table.c.erased).where(tagged.table.c.customer_id == "c-1")
        )
    assert flag is True and tagged.forgotten == ["c-1"]


async def test_ids_only_and_learning_twice_changes_nothing(any_engine: AsyncEngine) -> None:
    projection = IdsOnly()
    async with any_engine.begin() as conn:
        await conn.run_sync(projection.metadata.create_all)
    assert "tags" not in projection.table.c
    await apply(any_engine, projection, registered("c-1", ["vip"]), registered("c-1"))
    async with any_engine.begin() as conn:
        await projection.learn(conn, "acme", "c-1")
    assert await find(any_engine, projection, "c-1") == KnownCustomer("c-1")


# --- the directory -------------------------------------------------------------------


class Contacts:
    """Contacts' customer endpoint, as far as the directory asks it."""

    def __init__(self, customers: dict[str, dict[str, Any]]) -> None:
        self.customers = customers
        self.asked: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.asked.append(request)
        if request.headers.get("Authorization") != "Bearer token-of-the-caller":
            return httpx.Response(401)
        found = self.customers.get(request.url.path.rsplit("/", 1)[-1])
        if found is None:
            return httpx.Response(404, json={"detail": "not found"})
        return httpx.Response(200, content=json.dumps(found))


def directory_for(
    engine: AsyncEngine,
    projection: KnownCustomers,
    handler: Callable[[httpx.Request], httpx.Response],
) -> CustomerDirectory:
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return CustomerDirectory(projection, engine, URL, client)


BEARER = "token-of-the-caller"  # bare, as libs.platform.dependencies.bearer_token gives it


async def test_the_directory_asks_contacts_once_with_the_caller_s_token(
    any_engine: AsyncEngine, tagged: TaggedCustomers
) -> None:
    survivor = {"id": "c-9", "tags": ["vip"]}
    contacts = Contacts({"c-9": survivor, "old": survivor})  # "old": merged into c-9
    directory = directory_for(any_engine, tagged, contacts)
    await apply(any_engine, tagged, registered("c-1"))

    assert await directory.find("acme", "c-1", BEARER) == KnownCustomer("c-1")
    assert contacts.asked == []  # the topic told already

    assert await directory.find("acme", "c-9", BEARER) == KnownCustomer("c-9", ("vip",))
    assert [r.url.path for r in contacts.asked] == ["/api/v1/customers/c-9"]
    assert contacts.asked[0].headers["Authorization"] == f"Bearer {BEARER}"
    # Recorded: asked again, the projection answers.
    assert await directory.find("acme", "c-9", BEARER) == KnownCustomer("c-9", ("vip",))
    assert len(contacts.asked) == 1
    # Contacts answers a merged id with its survivor: recorded as merged into it.
    assert await directory.find("acme", "old", BEARER) == KnownCustomer("c-9", ("vip",))
    assert await find(any_engine, tagged, "old") == KnownCustomer("c-9", ("vip",))
    assert len(contacts.asked) == 2
    await directory.aclose()


async def test_unknown_is_a_404_and_an_unreachable_contacts_a_503(
    any_engine: AsyncEngine, tagged: TaggedCustomers
) -> None:
    contacts = Contacts({})
    directory = directory_for(any_engine, tagged, contacts)
    with pytest.raises(UnknownCustomer) as unknown:
        await directory.find("acme", "theirs", BEARER)  # another tenant's: contacts' 404
    assert unknown.value.status_code == 404
    assert await directory.known("acme", "theirs", None) is None  # no token: nobody asked
    assert len(contacts.asked) == 1

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    for handler in (down, lambda request: httpx.Response(502), Contacts({})):
        directory = directory_for(any_engine, tagged, handler)
        with pytest.raises(ContactsUnavailable) as unavailable:
            await directory.find("acme", "c-1", "someone-else's-token")
        assert unavailable.value.status_code == 503
        assert unavailable.value.headers == {"Retry-After": "2"}


async def test_the_directory_reads_the_generation_serving_now(
    any_engine: AsyncEngine,
) -> None:
    generations = {n: TaggedCustomers(n) for n in (1, 2)}
    async with any_engine.begin() as conn:
        for projection in generations.values():
            await conn.run_sync(projection.metadata.create_all)
    await apply(any_engine, generations[2], registered("c-1", ["vip"]))
    directory = CustomerDirectory(
        generations[1], any_engine, contacts_url=None, generations=generations.__getitem__
    )
    with pytest.raises(UnknownCustomer):
        await directory.find("acme", "c-1", BEARER)
    await activate_generation(any_engine, directory.customers.name, 2)
    assert await directory.find("acme", "c-1", BEARER) == KnownCustomer("c-1", ("vip",))
