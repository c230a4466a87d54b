"""The pipeline app against real PostgreSQL and the real broker, driven over HTTP.

Contacts runs beside it as the composition root wires it (its own database), so a
customer is registered the real way: its event reaches the pipeline through the
broker, and a customer the pipeline has not heard of yet is asked of contacts over
HTTP with the caller's token.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from uvicorn.importer import import_from_string

from libs.auth import issue_token
from libs.events.kafka import KafkaSettings
from libs.platform.settings import ServiceSettings
from services.bootstrap import SERVICES
from services.pipeline.app import create_app
from services.pipeline.handlers import Pipeline
from services.pipeline.settings import Settings
from testing.fixtures import MigratedTemplates

SECRET = "pipeline-tests-secret-at-least-32-bytes-long"
MIGRATIONS = Path(__file__).parents[1] / "migrations"
# Contacts' schema as the composition root declares it (never imported from contacts).
CONTACTS_MIGRATIONS = next(s.migrations for s in SERVICES if s.name == "contacts") or Path()
# Nothing listens here: a contacts whose events never reach the broker.
NO_BROKER = "127.0.0.1:9"

Condition = Callable[[], Awaitable[bool]]


async def eventually(condition: Condition, *, timeout: float = 30.0, every: float = 0.05) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await condition():
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"condition not met within {timeout}s")
        await asyncio.sleep(every)


@pytest.fixture
async def contacts_db(migrated_templates: MigratedTemplates) -> AsyncIterator[str]:
    """Contacts' own database: services never share tables."""
    async with migrated_templates.copy(CONTACTS_MIGRATIONS, prefix="crm_test_contacts") as url:
        yield url


def contacts_app(database_url: str, bootstrap: str, partitions: int) -> FastAPI:
    (declaration,) = [s for s in SERVICES if s.name == "contacts"]
    settings: ServiceSettings = declaration.settings(
        database_url=database_url,
        kafka_bootstrap_servers=bootstrap,
        kafka_partitions=partitions,
        jwt_secret=SecretStr(SECRET),
        log_level="WARNING",
    )
    app: FastAPI = import_from_string(declaration.app)(settings)
    return app


@pytest.fixture
def publishing_contacts() -> bool:
    """Whether contacts' events reach the broker (override to test replication lag)."""
    return True


@pytest.fixture
async def contacts(
    contacts_db: str, kafka: KafkaSettings, publishing_contacts: bool
) -> AsyncIterator[FastAPI]:
    bootstrap = kafka.bootstrap_servers if publishing_contacts else NO_BROKER
    app = contacts_app(contacts_db, bootstrap, kafka.partitions)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def service_pg_url(migrated_templates: MigratedTemplates) -> AsyncIterator[str]:
    """The pipeline's database, at its schema already: a copy of one migrated once."""
    async with migrated_templates.copy(MIGRATIONS) as url:
        yield url


@pytest.fixture
def settings(service_pg_url: str, kafka: KafkaSettings) -> Settings:
    return Settings(
        database_url=service_pg_url,
        kafka_bootstrap_servers=kafka.bootstrap_servers,
        kafka_partitions=kafka.partitions,
        jwt_secret=SecretStr(SECRET),
        contacts_url="http://contacts",
        log_level="WARNING",
    )


@pytest.fixture
async def app(settings: Settings, contacts: FastAPI) -> AsyncIterator[FastAPI]:
    app = create_app(settings)
    pipeline: Pipeline = app.state.pipeline
    # Contacts in this process instead of on a port: the same requests, no socket.
    pipeline.directory.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=contacts))
    async with app.router.lifespan_context(app):
        yield app
    await pipeline.directory.client.aclose()


@dataclass
class Api:
    """HTTP clients of the pipeline and of contacts, plus tokens for any tenant and role."""

    client: httpx.AsyncClient
    contacts: httpx.AsyncClient
    settings: Settings
    app: FastAPI

    @property
    def pipeline(self) -> Pipeline:
        pipeline: Pipeline = self.app.state.pipeline
        return pipeline

    def auth(
        self, tenant: str = "acme", roles: Iterable[str] = ("admin",), subject: str = "u-1"
    ) -> dict[str, str]:
        token = issue_token(self.settings.auth(), subject, tenant, roles)
        return {"Authorization": f"Bearer {token}"}

    async def register(self, tenant: str = "acme", **body: Any) -> str:
        body.setdefault("kind", "person")
        body.setdefault("name", "王芳")
        response = await self.contacts.post(
            "/api/v1/customers", json=body, headers=self.auth(tenant)
        )
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    async def place(
        self, customer_id: str, tenant: str = "acme", expect: int = 201, **body: Any
    ) -> dict[str, Any]:
        body = {
            "customer_id": customer_id,
            "currency": "CNY",
            "lines": [{"sku": "TEA-01", "name": "龙井", "quantity": 2, "unit_price": 8800}],
        } | body
        response = await self.client.post("/api/v1/orders", json=body, headers=self.auth(tenant))
        assert response.status_code == expect, response.text
        answer: dict[str, Any] = response.json()
        return answer


@pytest.fixture
async def api(app: FastAPI, contacts: FastAPI, settings: Settings) -> AsyncIterator[Api]:
    async with (
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://pipeline") as c,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=contacts), base_url="http://contacts"
        ) as contacts_client,
    ):
        yield Api(c, contacts_client, settings, app)
