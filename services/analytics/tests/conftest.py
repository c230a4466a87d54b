"""The analytics app against real PostgreSQL (or SQLite, the embedded default) and the
real broker, driven over HTTP and fed other services' events the way they publish
them (binary CloudEvents on their topics, keyed by customer)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from libs.events.catalog import DomainEvent
from libs.events.kafka import KafkaSettings
from libs.events.store import EventStore
from libs.platform.db import create_engine
from services.analytics.app import create_app
from services.analytics.handlers import Analytics
from services.analytics.settings import Settings
from testing.consumers import Clock, ConsumerClient, envelopes_of, eventually
from testing.fixtures import MigratedTemplates

SECRET = "analytics-tests-secret-at-least-32-bytes"
MIGRATIONS = Path(__file__).parents[1] / "migrations"
T0 = datetime(2026, 7, 1, 9, 0, tzinfo=UTC)

# Analytics' projector catches up with whole histories: longer than the default wait.
eventually = partial(eventually, timeout=60.0)


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
async def service_pg_url(migrated_templates: MigratedTemplates) -> AsyncIterator[str]:
    """Analytics' database, at its schema already: a copy of one migrated once."""
    async with migrated_templates.copy(MIGRATIONS) as url:
        yield url


@pytest.fixture(params=["postgresql", "sqlite"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The boundary tests run on both: PostgreSQL in production, SQLite embedded."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'analytics.db'}"
    return str(request.getfixturevalue("service_pg_url"))


@pytest.fixture
def settings(database_url: str, kafka: KafkaSettings) -> Settings:
    return Settings(
        database_url=database_url,
        kafka_bootstrap_servers=kafka.bootstrap_servers,
        kafka_partitions=kafka.partitions,
        jwt_secret=SecretStr(SECRET),
        log_level="WARNING",
        # Tests evaluate segments when they mean to (handlers.segments.sweep).
        run_sweep=False,
        generation_check_seconds=0.2,
    )


@pytest.fixture
async def app(settings: Settings, clock: Clock) -> AsyncIterator[FastAPI]:
    analytics = Analytics(EventStore(create_engine(settings.database_url)), clock=clock)
    app = create_app(settings, analytics)
    async with app.router.lifespan_context(app):
        yield app


class Api(ConsumerClient):
    """The analytics app over HTTP; how far its projector consumed; its figures."""

    wait_seconds = 60.0

    async def publish(
        self,
        service: str,
        customer_id: str,
        *events: DomainEvent,
        tenant: str = "acme",
        at: datetime | None = None,
    ) -> list[str]:
        """Publish as the other service's relay would, at ``at`` (the envelope's time)."""
        envelopes = envelopes_of(service, customer_id, events, tenant=tenant, at=at or T0)
        await self.publish_envelopes(service, envelopes)
        return [e.id for e in envelopes]

    async def consumed(self) -> int:
        runner = self.app.state.projector.runner
        return sum(runner.progress.values()) if runner is not None else 0

    async def get(self, path: str, tenant: str = "acme", **params: Any) -> Any:
        response = await self.client.get(
            f"/api/v1/analytics/{path}",
            params={k: v for k, v in params.items() if v is not None},
            headers=self.auth(tenant),
        )
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture
async def api(app: FastAPI, settings: Settings, kafka: KafkaSettings) -> AsyncIterator[Api]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://analytics") as client:
        yield Api(client, settings, kafka, app)
