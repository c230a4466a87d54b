"""The loyalty app against real PostgreSQL and the real broker, driven over HTTP and
fed other services' events the way they publish them (CloudEvents on their topics)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from libs.events.catalog import DomainEvent
from libs.events.envelope import EventEnvelope
from libs.events.kafka import KafkaSettings
from libs.events.store import EventStore
from libs.platform.db import create_engine
from services.loyalty.app import create_app
from services.loyalty.handlers import Loyalty
from services.loyalty.settings import Settings
from testing.consumers import Clock, ConsumerClient, envelopes_of
from testing.consumers import eventually as eventually  # the service's tests import it here
from testing.fixtures import MigratedTemplates

SECRET = "loyalty-tests-secret-at-least-32-bytes-long"
MIGRATIONS = Path(__file__).parents[1] / "migrations"
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
async def service_pg_url(migrated_templates: MigratedTemplates) -> AsyncIterator[str]:
    """Loyalty's database, at its schema already: a copy of one migrated once."""
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
        expiry_sweep_seconds=3600,
    )


@pytest.fixture
async def app(settings: Settings, clock: Clock) -> AsyncIterator[FastAPI]:
    loyalty = Loyalty(EventStore(create_engine(settings.database_url)), clock=clock)
    app = create_app(settings, loyalty)
    async with app.router.lifespan_context(app):
        yield app


class Api(ConsumerClient):
    """The loyalty app over HTTP; how far its reactions consumed; balances and ledgers."""

    async def publish(
        self,
        service: str,
        customer_id: str,
        *events: DomainEvent,
        tenant: str = "acme",
        ids: Iterable[str] | None = None,
    ) -> list[EventEnvelope]:
        """Publish as the other service's relay would (binary CloudEvents, keyed by customer)."""
        envelopes = envelopes_of(service, customer_id, events, tenant=tenant, at=T0, ids=ids)
        await self.publish_envelopes(service, envelopes)
        return envelopes

    async def loyalty(self, customer_id: str, tenant: str = "acme", **params: Any) -> Any:
        response = await self.client.get(
            f"/api/v1/customers/{customer_id}/loyalty", params=params, headers=self.auth(tenant)
        )
        assert response.status_code == 200, response.text
        return response.json()

    async def ledger(self, customer_id: str, tenant: str = "acme") -> list[dict[str, Any]]:
        response = await self.client.get(
            f"/api/v1/customers/{customer_id}/loyalty/ledger", headers=self.auth(tenant)
        )
        assert response.status_code == 200, response.text
        lines: list[dict[str, Any]] = response.json()["lines"]
        return lines

    async def consumed(self) -> int:
        """How many events the reactions have taken from the topics so far."""
        runner = self.app.state.earning
        return sum(runner.progress.values())


@pytest.fixture
async def api(app: FastAPI, settings: Settings, kafka: KafkaSettings) -> AsyncIterator[Api]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://loyalty") as client:
        yield Api(client, settings, kafka, app)
