"""The HTTP API with the app's own lifespan running the projector: PostgreSQL + broker."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest_asyncio
from fastapi import FastAPI

from libs.auth import issue_token
from libs.events.catalog.contacts import (
    CustomerMerged,
    CustomerMergedInto,
    CustomerRegistered,
    CustomerTagged,
)
from libs.events.kafka import KafkaSettings
from services.customer360.app import create_app
from services.customer360.settings import Settings
from services.customer360.tests.conftest import T0, ContactsTopic, CustomerStream, eventually
from testing.problems import problem_of


@dataclass
class Service:
    app: FastAPI
    client: httpx.AsyncClient
    settings: Settings

    def token(self, tenant: str = "acme", roles: tuple[str, ...] = ("viewer",)) -> str:
        return issue_token(self.settings.auth(), "u-test", tenant, roles)

    async def get(self, path: str, *, tenant: str = "acme", **params: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token(tenant)}"}
        return await self.client.get(path, headers=headers, params=params)


@pytest_asyncio.fixture
async def service(pg_url: str, kafka: KafkaSettings) -> AsyncIterator[Service]:
    settings = Settings(
        database_url=pg_url,
        kafka_bootstrap_servers=kafka.bootstrap_servers,
        kafka_partitions=kafka.partitions,
        generation_check_seconds=0.2,
        lag_refresh_seconds=0.3,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://customer360") as client:
            yield Service(app, client, settings)
    # Shut down cleanly: the projector's task ended, it was not left running.
    assert app.state.projector.state().running is False


def register(stream: CustomerStream, name: str = "Chen Jing", **more: Any) -> Any:
    return stream(
        CustomerRegistered(customer_id=stream.customer_id, tenant_id=stream.tenant_id,
                           kind="person", name=name, registered_at=T0, **more)
    )


async def test_the_360_view_waits_for_the_version_just_written(
    service: Service, contacts: ContactsTopic
) -> None:
    stream = CustomerStream("acme")
    await contacts.publish(register(stream, email="chen.jing@example.com", tags=["lead"]))

    response = await service.get(f"/api/v1/customers/{stream.customer_id}/360",
                                 min_version=1, wait_ms=10_000)

    assert response.status_code == 200, response.text
    assert response.headers["Cache-Control"] == "no-store"
    body = response.json()
    assert body["customer_id"] == stream.customer_id
    assert body["profile"]["email"] == "chen.jing@example.com"
    assert body["tags"] == ["lead"]
    assert body["owner_id"] is None
    assert body["key_contacts"] == {} and body["consent"] == {}
    assert body["last_interaction"] is None and body["recent_interactions"] == []
    assert [e["summary"] for e in body["timeline"]] == ["Registered person Chen Jing"]
    assert {k: body[k] for k in ("deals", "orders", "tickets", "loyalty", "alerts")} == {
        "deals": [], "orders": [], "tickets": [], "loyalty": None, "alerts": []
    }
    assert body["service"] == {
        "breaches": 0, "recent_breaches": [], "last_csat": None, "last_nps": None
    }
    assert body["freshness"]["version"] == 1
    assert body["freshness"]["projection"]["generation"] == 1

    # A write lands while the client waits: the answer comes when it is applied.
    waiting = asyncio.create_task(
        service.get(f"/api/v1/customers/{stream.customer_id}/360", min_version=2, wait_ms=10_000)
    )
    await asyncio.sleep(0.3)
    assert not waiting.done()
    await contacts.publish(stream(CustomerTagged(customer_id=stream.customer_id, tag="vip")))
    response = await waiting

    assert response.status_code == 200
    assert response.json()["tags"] == ["lead", "vip"]
    assert response.json()["freshness"]["version"] == 2


async def test_a_version_the_view_does_not_reach_in_time_is_a_clear_504(
    service: Service, contacts: ContactsTopic
) -> None:
    stream = CustomerStream("acme")
    await contacts.publish(register(stream))
    path = f"/api/v1/customers/{stream.customer_id}/360"
    assert (await service.get(path, min_version=1, wait_ms=10_000)).status_code == 200

    response = await service.get(path, min_version=5, wait_ms=200)

    assert response.status_code == 504
    assert response.headers["Retry-After"] == "1"
    body = response.json()
    assert body["code"] == "view_behind"
    assert (body["customer_id"], body["min_version"], body["version"]) == (
        stream.customer_id, 5, 1
    )
    assert 200 <= body["waited_ms"] < 1000
    assert "has not reached version 5" in body["detail"]


async def test_an_unknown_customer_with_min_version_is_a_404_not_a_504(service: Service) -> None:
    response = await service.get("/api/v1/customers/c-nobody/360", min_version=1, wait_ms=100)

    assert response.status_code == 404
    assert response.json()["customer_id"] == "c-nobody"


async def test_waits_are_bounded(service: Service) -> None:
    response = await service.get("/api/v1/customers/c-1/360", min_version=1, wait_ms=10_001)

    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "wait_ms"
    response = await service.get("/api/v1/customers/c-1/360", min_version=0)
    assert response.status_code == 422


async def test_unknown_and_other_tenants_customers_are_not_found(
    service: Service, contacts: ContactsTopic
) -> None:
    theirs = CustomerStream("globex")
    await contacts.publish(register(theirs))
    path = f"/api/v1/customers/{theirs.customer_id}/360"
    assert (
        await service.get(path, tenant="globex", min_version=1, wait_ms=10_000)
    ).status_code == 200

    response = await service.get(path, tenant="acme")

    assert response.status_code == 404
    assert problem_of(response) == {
        "detail": f"customer {theirs.customer_id} not found",
        "customer_id": theirs.customer_id,
    }
    # Even waiting for it does not reveal that it exists elsewhere: never a 200, and once
    # the projection is measured caught up, an unknown id's 404 (before, a 504 view_behind
    # as for any id while the projection is behind).
    deadline = asyncio.get_running_loop().time() + 20
    while True:
        waited = await service.get(path, tenant="acme", min_version=1, wait_ms=100)
        assert waited.status_code in (404, 504), waited.text
        if waited.status_code == 404:
            break
        assert asyncio.get_running_loop().time() < deadline, waited.text
        await asyncio.sleep(0.2)


async def test_a_caller_needs_a_valid_token(service: Service) -> None:
    response = await service.client.get("/api/v1/customers/c-1/360")
    assert response.status_code == 401

    forged = service.token() + "x"
    response = await service.client.get(
        "/api/v1/customers/c-1/360", headers={"Authorization": f"Bearer {forged}"}
    )
    assert response.status_code == 401


async def test_a_merged_duplicates_id_answers_with_the_survivor(
    service: Service, contacts: ContactsTopic
) -> None:
    survivor, duplicate = CustomerStream("acme"), CustomerStream("acme")
    await contacts.publish(
        register(survivor),
        register(duplicate, phone="+8613700137000"),
        survivor(CustomerMerged(customer_id=survivor.customer_id,
                                duplicate_id=duplicate.customer_id, phone="+8613700137000")),
        duplicate(CustomerMergedInto(customer_id=duplicate.customer_id,
                                     survivor_id=survivor.customer_id)),
    )
    await service.get(f"/api/v1/customers/{survivor.customer_id}/360", min_version=2,
                      wait_ms=10_000)

    response = await service.get(f"/api/v1/customers/{duplicate.customer_id}/360",
                                 min_version=2, wait_ms=10_000)

    assert response.status_code == 200
    body = response.json()
    assert body["customer_id"] == survivor.customer_id
    assert body["requested_id"] == duplicate.customer_id
    assert body["profile"]["phone"] == "+8613700137000"
    assert body["profile"]["phone_international"] == "+86 137 0013 7000"
    assert len(body["timeline"]) == 4


async def test_ops_see_the_projections_lag(service: Service, contacts: ContactsTopic) -> None:
    streams = [CustomerStream("acme") for _ in range(5)]
    await contacts.publish(*(register(s) for s in streams))
    for s in streams:
        await service.get(f"/api/v1/customers/{s.customer_id}/360", min_version=1, wait_ms=10_000)

    response = await service.get("/api/v1/projections/customer360/status")

    assert response.status_code == 200
    status = response.json()
    assert status["projection"] == "customer360"
    assert status["generation"] == 1
    assert status["lag_events"] == 0
    assert sum(p["end_offset"] for p in status["partitions"]) == 5
    assert status["projector"]["running"] is True
    assert status["projector"]["last_error"] is None

    # Every view quotes the lag too, as measured a moment ago.
    async def lag_quoted() -> bool:
        view = await service.get(f"/api/v1/customers/{streams[0].customer_id}/360")
        lag = view.json()["freshness"]["projection"]
        return lag["lag_events"] == 0 and lag["stalled"] is False and lag["measured_at"] is not None

    await eventually(lag_quoted, timeout=15)
