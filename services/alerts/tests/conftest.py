"""The alerts app against real PostgreSQL and the real broker, driven over HTTP and
fed other services' events the way they publish them (CloudEvents on their topics)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from fastapi import FastAPI
from pydantic import SecretStr

from libs.events.catalog import DomainEvent
from libs.events.kafka import KafkaSettings, service_topic
from libs.events.store import EventStore
from libs.platform.db import create_engine
from services.alerts.app import create_app
from services.alerts.handlers import Alerts
from services.alerts.settings import Settings
from testing.consumers import Clock, ConsumerClient, envelopes_of
from testing.consumers import eventually as eventually  # the service's tests import it here
from testing.fixtures import MigratedTemplates

SECRET = "alerts-tests-secret-at-least-32-bytes-long"
MIGRATIONS = Path(__file__).parents[1] / "migrations"
T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
async def service_pg_url(migrated_templates: MigratedTemplates) -> AsyncIterator[str]:
    """Alerts' database, at its schema already: a copy of one migrated once."""
    async with migrated_templates.copy(MIGRATIONS) as url:
        yield url


@pytest.fixture
def settings(service_pg_url: str, kafka: KafkaSettings) -> Settings:
    return Settings(
        database_url=service_pg_url,
        kafka_bootstrap_servers=kafka.bootstrap_servers,
        kafka_partitions=kafka.partitions,
        jwt_secret=SecretStr(SECRET),
        log_level="WARNING",
        # Tests sweep and publish weekly lists when they mean to, never on a timer.
        run_sweep=False,
        run_weekly=False,
        run_past_rankings=False,
    )


@pytest.fixture
async def app(settings: Settings, clock: Clock) -> AsyncIterator[FastAPI]:
    alerts = Alerts(EventStore(create_engine(settings.database_url)), clock=clock)
    app = create_app(settings, alerts)
    async with app.router.lifespan_context(app):
        yield app


class Api(ConsumerClient):
    """The alerts app over HTTP; how far its churn projector consumed; its risks."""

    async def publish(
        self,
        service: str,
        customer_id: str,
        *events: DomainEvent,
        tenant: str = "acme",
        at: datetime | None = None,
    ) -> list[str]:
        """Publish as the other service's relay would (binary CloudEvents, keyed by
        customer), at ``at`` (the envelope's time); returns the events' ids."""
        envelopes = envelopes_of(service, customer_id, events, tenant=tenant, at=at or T0)
        await self.publish_envelopes(service, envelopes)
        return [e.id for e in envelopes]

    async def consumed(self) -> int:
        """How many events the projector has taken from the topics so far."""
        runner = self.app.state.projector
        return sum(runner.progress.values())

    async def risk(self, customer_id: str, tenant: str = "acme", **params: Any) -> Any:
        response = await self.client.get(
            f"/api/v1/customers/{customer_id}/churn-risk",
            params=params,
            headers=self.auth(tenant),
        )
        assert response.status_code == 200, response.text
        return response.json()

    async def risks(self, tenant: str = "acme", **params: Any) -> Any:
        response = await self.client.get(
            "/api/v1/churn/risks", params=params, headers=self.auth(tenant)
        )
        assert response.status_code == 200, response.text
        return response.json()


async def read_topic(
    kafka: KafkaSettings,
    until: Callable[[list[dict[str, Any]]], bool],
    topic: str = service_topic("alerts"),
    timeout: float = 30.0,
) -> list[dict[str, Any]]:
    """Every message on ``topic`` (its CloudEvents id, type and data), read from the
    start until ``until`` holds; a message repeated by a relay retry counts once."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka.bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    seen: dict[str, dict[str, Any]] = {}
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while not until(list(seen.values())):
            if asyncio.get_running_loop().time() > deadline:
                pytest.fail(f"expected events not on {topic} within {timeout}s: {seen}")
            for records in (await consumer.getmany(timeout_ms=200)).values():
                for r in records:
                    headers = dict(r.headers)
                    seen[headers["ce_id"].decode()] = {
                        "type": headers["ce_type"].decode(),
                        "data": json.loads(r.value),
                    }
    finally:
        await consumer.stop()
    return list(seen.values())


def days_before(n: float) -> datetime:
    return T0 - timedelta(days=n)


@pytest.fixture
async def api(app: FastAPI, settings: Settings, kafka: KafkaSettings) -> AsyncIterator[Api]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://alerts") as client:
        yield Api(client, settings, kafka, app)
