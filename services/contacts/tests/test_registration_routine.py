"""Registration in one round trip (PostgreSQL) keeps every rule of the statement-by-
statement path: it is taken once a tenant's custom fields are known to the process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry.sdk.trace import TracerProvider
from sqlalchemy import select

from libs.events import tracing
from libs.events.store import events
from services.contacts.app import create_app
from services.contacts.handlers.customers import Contacts
from services.contacts.settings import Settings
from services.contacts.tests.conftest import Api

CUSTOMERS = "/api/v1/customers"


def contacts_of(app: FastAPI) -> Contacts:
    contacts: Contacts = app.state.contacts
    return contacts


async def warm(api: Api, tenant: str = "acme") -> None:
    """A first registration reads the tenant's custom fields: later ones take the routine."""
    await api.register(tenant, name="First", email=f"first@{tenant}.example")


async def test_the_routine_is_taken_once_the_tenants_custom_fields_are_known(
    api: Api, app: FastAPI
) -> None:
    assert "acme" not in contacts_of(app).known_custom_fields

    await warm(api)

    assert contacts_of(app).known_custom_fields["acme"] == ({}, 0)


async def test_a_customer_registered_by_the_routine_reads_as_one_registered_step_by_step(
    api: Api,
) -> None:
    body: dict[str, Any] = {
        "kind": "person", "name": "张伟", "phone": "138 0013 8000", "owner_id": "sales-1",
        "tags": ["vip", "beijing"], "birthday": "1990-05-01",
    }
    step_by_step = await api.register(**body, email="one@example.com")  # cold: no routine
    routine = await api.register(**{**body, "phone": "138 0013 8001"}, email="two@example.com")

    first, second = await api.get(step_by_step), await api.get(routine)
    differs = {"id", "email", "phone", "phone_international", "registered_at"}
    assert {k: v for k, v in first.items() if k not in differs} == {
        k: v for k, v in second.items() if k not in differs
    }
    assert second["phone"] == "+8613800138001" and second["version"] == 1
    assert [c["id"] for c in await api.search(q="zw")] == [routine, step_by_step]
    assert [c["id"] for c in await api.search(tag="beijing", owner="sales-1")] == [
        routine, step_by_step,
    ]
    history = await api.client.get(f"{CUSTOMERS}/{routine}/history", headers=api.auth())
    assert [e["type"] for e in history.json()["events"]] == [
        e["type"]
        for e in (
            await api.client.get(f"{CUSTOMERS}/{step_by_step}/history", headers=api.auth())
        ).json()["events"]
    ]
    assert history.json()["events"][0]["data"]["name"] == "张伟"


async def test_a_duplicate_through_the_routine_is_a_409_naming_the_holder(api: Api) -> None:
    await warm(api)
    holder = await api.register(name="A", email="taken@example.com", phone="13900000001")

    by_email = await api.client.post(
        CUSTOMERS, json={"kind": "person", "name": "B", "email": "TAKEN@example.com"},
        headers=api.auth(),
    )
    by_phone = await api.client.post(
        CUSTOMERS, json={"kind": "person", "name": "C", "phone": "+86 139 0000 0001"},
        headers=api.auth(),
    )
    anyway = await api.client.post(
        CUSTOMERS,
        json={"kind": "person", "name": "D", "email": "taken@example.com",
              "register_anyway": True},
        headers=api.auth(),
    )

    assert (by_email.status_code, by_email.json()["existing_id"]) == (409, holder)
    assert by_email.json()["field"] == "email"
    assert (by_phone.status_code, by_phone.json()["existing_id"]) == (409, holder)
    assert by_phone.json()["field"] == "phone"
    assert anyway.status_code == 201
    # The refused ones left nothing behind; the one registered anyway is listed.
    names = sorted(c["name"] for c in await api.search())
    assert names == ["A", "D", "First"]


async def test_of_concurrent_routine_registrations_with_one_phone_exactly_one_wins(
    api: Api,
) -> None:
    await warm(api)

    async def register(i: int) -> httpx.Response:
        return await api.client.post(
            CUSTOMERS, json={"kind": "person", "name": f"Racer {i}", "phone": "13700000000"},
            headers=api.auth(),
        )

    responses = await asyncio.gather(*(register(i) for i in range(16)))

    assert sorted(r.status_code for r in responses) == [201] + [409] * 15
    [winner] = [r.json()["id"] for r in responses if r.status_code == 201]
    assert {r.json()["existing_id"] for r in responses if r.status_code == 409} == {winner}


@pytest.fixture
async def other_process(settings: Settings) -> AsyncIterator[Api]:
    """A second contacts process on the same database, as when the service scales out."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://contacts") as client:
            yield Api(client, settings)


async def test_a_custom_field_defined_by_another_process_is_enforced_at_once(
    api: Api, app: FastAPI, other_process: Api
) -> None:
    await warm(api)
    assert contacts_of(app).known_custom_fields["acme"] == ({}, 0)

    defined = await other_process.client.put(
        "/api/v1/custom-fields/segment",
        json={"type": "choice", "required": True, "choices": ["retail", "wholesale"]},
        headers=other_process.auth(),
    )
    missing = await api.client.post(
        CUSTOMERS, json={"kind": "person", "name": "No Segment"}, headers=api.auth()
    )
    given = await api.client.post(
        CUSTOMERS, json={"kind": "person", "name": "Retail", "attributes": {"segment": "retail"}},
        headers=api.auth(),
    )

    assert defined.status_code == 201, defined.text
    assert missing.status_code == 422
    assert "attributes.segment" in missing.text
    assert given.status_code == 201, given.text
    assert contacts_of(app).known_custom_fields["acme"][1] == 1


async def test_the_routine_stores_the_registrations_trace_context_with_its_events(
    api: Api, app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The request's trace goes on to Kafka from the events table (decision 0103): the
    routine stores the context of its ``append`` span, a child of the request's."""
    monkeypatch.delenv("OTEL_SDK_DISABLED", raising=False)
    provider = TracerProvider()
    monkeypatch.setattr(tracing, "TRACER", provider.get_tracer("crm.events"))
    monkeypatch.setattr(tracing, "traces_recorded", lambda: True)
    await warm(api)

    with provider.get_tracer("test").start_as_current_span("POST /customers") as request:
        registered = await api.register(name="王芳", email="wang.fang@example.com")

    async with contacts_of(app).store.engine.connect() as conn:
        (traceparent,) = (
            await conn.execute(select(events.c.traceparent).where(events.c.stream_id == registered))
        ).one()
    _, trace_id, span_id, _ = traceparent.split("-")
    assert trace_id == f"{request.get_span_context().trace_id:032x}"
    assert span_id != f"{request.get_span_context().span_id:016x}"  # the append's own span
