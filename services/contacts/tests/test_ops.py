"""The contacts service's ops report: its outbox backlog, counted as the relay counts it
for ``crm_outbox_backlog_events`` (PostgreSQL; the broker real, then away)."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from services.contacts.app import create_app
from services.contacts.settings import Settings
from services.contacts.tests.conftest import Api, eventually
from testing.problems import problem_of

OPS = "/api/v1/ops/contacts"


def _closed_port() -> str:
    """An address nothing listens on: the broker is away."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{probe.getsockname()[1]}"


@pytest.fixture
async def without_broker(settings: Settings) -> AsyncIterator[Api]:
    away = settings.model_copy(update={"kafka_bootstrap_servers": _closed_port()})
    app: FastAPI = create_app(away)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://contacts") as client:
            yield Api(client, away)


async def test_what_waits_in_the_outbox_is_counted_with_its_age_while_the_broker_is_away(
    without_broker: Api,
) -> None:
    api = without_broker
    for i in range(3):
        await api.register(name=f"客户 {i}", email=f"c{i}@example.com")

    async def aged() -> bool:
        response = await api.client.get(OPS, headers=api.auth(roles=("manager",)))
        assert response.status_code == 200, response.text
        return bool(response.json()["outbox"]["oldest_age_seconds"] > 0.2)

    await eventually(aged, timeout=10)
    report = (await api.client.get(OPS, headers=api.auth(roles=("manager",)))).json()
    assert report["service"] == "contacts"
    assert report["outbox"]["events"] == 3
    assert report["outbox"]["oldest_enqueued_at"] is not None
    # Contacts consumes nothing: no projection to watch or rebuild.
    assert report["projections"] == []


async def test_the_backlog_drains_once_published_and_ops_is_for_admins_and_managers(
    api: Api,
) -> None:
    await api.register(email="wf@example.com")

    async def drained() -> bool:
        report = (await api.client.get(OPS, headers=api.auth(roles=("admin",)))).json()
        return bool(report["outbox"]["events"] == 0)

    await eventually(drained, timeout=30)
    report = (await api.client.get(OPS, headers=api.auth(roles=("admin",)))).json()
    assert report["outbox"]["oldest_age_seconds"] == 0
    assert report["outbox"]["oldest_enqueued_at"] is None
    for role in ("viewer", "sales", "support", "marketing", "integration"):
        refused = await api.client.get(OPS, headers=api.auth(roles=(role,)))
        assert refused.status_code == 403, role
        assert "ops:read" in problem_of(refused)["detail"]


async def test_a_projection_the_service_does_not_run_is_not_found(api: Api) -> None:
    response = await api.client.post(
        f"{OPS}/projections/customer360/rebuilds", headers=api.auth(roles=("operator",))
    )
    assert response.status_code == 404
    assert problem_of(response)["projection"] == "customer360"
