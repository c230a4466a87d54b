"""The tickets app against real PostgreSQL and the real broker, driven over HTTP.

Contacts runs beside it, in process, on a database of its own and the same broker:
tickets learns customers from its topic, or asks its API about one not seen yet. It is
started as the composition root declares it (tests never import another service).
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from libs.auth import issue_token
from libs.events.kafka import KafkaSettings
from services.bootstrap import SERVICES
from services.tickets.app import create_app
from services.tickets.settings import Settings
from testing.fixtures import MigratedTemplates

SECRET = "tickets-tests-secret-at-least-32-bytes-long"
MIGRATIONS = Path(__file__).parents[1] / "migrations"
# A Monday, 10:00 in Shanghai: inside the standard calendar's working hours.
MONDAY_10 = datetime(2026, 12, 7, 2, 0, tzinfo=UTC)

Condition = Callable[[], Awaitable[bool]]
CONTACTS = next(service for service in SERVICES if service.name == "contacts")
CONTACTS_MIGRATIONS = CONTACTS.migrations or Path()


def create_contacts_app(settings: Any) -> FastAPI:
    module, _, factory = CONTACTS.app.partition(":")
    app: FastAPI = getattr(importlib.import_module(module), factory)(settings)
    return app


async def eventually(condition: Condition, *, timeout: float = 30.0, every: float = 0.05) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await condition():
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"condition not met within {timeout}s")
        await asyncio.sleep(every)


@dataclass
class MovableClock:
    """The time the service sees; tests move it instead of sleeping."""

    now: datetime = MONDAY_10

    def __call__(self) -> datetime:
        return self.now

    def advance(self, by: timedelta) -> None:
        self.now += by


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock()


@pytest.fixture
async def contacts_db(migrated_templates: MigratedTemplates) -> AsyncIterator[str]:
    """A second fresh database: contacts' tables must not share tickets' event store."""
    async with migrated_templates.copy(CONTACTS_MIGRATIONS, prefix="crm_test_contacts") as url:
        yield url


@pytest.fixture
async def contacts_app(contacts_db: str, kafka: KafkaSettings) -> AsyncIterator[FastAPI]:
    settings = CONTACTS.settings(
        database_url=contacts_db,
        kafka_bootstrap_servers=kafka.bootstrap_servers,
        kafka_partitions=kafka.partitions,
        jwt_secret=SecretStr(SECRET),
        log_level="WARNING",
    )
    app = create_contacts_app(settings)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def service_pg_url(migrated_templates: MigratedTemplates) -> AsyncIterator[str]:
    """Tickets' database, at its schema already: a copy of one migrated once."""
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
        contacts_url="http://contacts",
        sla_check_seconds=0.05,
    )


def tickets_app(settings: Settings, clock: MovableClock, contacts_app: FastAPI | None) -> FastAPI:
    app = create_app(settings, clock=clock)
    if contacts_app is not None:
        # Contacts in this process instead of on a port; closed with the app.
        app.state.tickets.directory.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=contacts_app)
        )
    return app


@pytest.fixture
async def app(
    settings: Settings, clock: MovableClock, contacts_app: FastAPI
) -> AsyncIterator[FastAPI]:
    app = tickets_app(settings, clock, contacts_app)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
def built_app(tmp_path: Path, clock: MovableClock) -> FastAPI:
    """The app as built, never started: its routes and OpenAPI document need no
    database, broker, relay or contacts, which cost a started app's tests seconds each."""
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'tickets.db'}",
        jwt_secret=SecretStr(SECRET),
        log_level="WARNING",
    )
    return tickets_app(settings, clock, None)


@dataclass
class Api:
    """HTTP clients of tickets and contacts, plus tokens for any tenant and role."""

    client: httpx.AsyncClient
    contacts: httpx.AsyncClient
    settings: Settings
    customers: dict[str, str] = field(default_factory=dict)

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

    async def open(self, customer_id: str, tenant: str = "acme", **body: Any) -> dict[str, Any]:
        body.setdefault("subject", "洗衣机不转了")
        response = await self.client.post(
            "/api/v1/tickets", json={"customer_id": customer_id, **body}, headers=self.auth(tenant)
        )
        assert response.status_code == 201, response.text
        opened: dict[str, Any] = response.json()
        return opened

    async def post(
        self, path: str, body: dict[str, Any], tenant: str = "acme", **headers: str
    ) -> httpx.Response:
        return await self.client.post(path, json=body, headers={**self.auth(tenant), **headers})

    async def get(self, path: str, tenant: str = "acme", **params: Any) -> httpx.Response:
        return await self.client.get(path, params=params, headers=self.auth(tenant))

    async def put(self, path: str, body: dict[str, Any], tenant: str = "acme") -> httpx.Response:
        return await self.client.put(path, json=body, headers=self.auth(tenant))


@pytest.fixture
async def api(app: FastAPI, contacts_app: FastAPI, settings: Settings) -> AsyncIterator[Api]:
    async with (
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=contacts_app), base_url="http://contacts"
        ) as contacts,
    ):
        yield Api(client, contacts, settings)
