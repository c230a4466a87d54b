"""The contacts app against real PostgreSQL and the real broker, driven over HTTP."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from fastapi import FastAPI
from pydantic import SecretStr

from libs.auth import issue_token
from libs.events.kafka import KafkaSettings, service_topic
from services.contacts.app import create_app
from services.contacts.settings import Settings
from testing.fixtures import MigratedTemplates

SECRET = "contacts-tests-secret-at-least-32-bytes-long"
MIGRATIONS = Path(__file__).parents[1] / "migrations"
TOPIC = service_topic("contacts")

Condition = Callable[[], Awaitable[bool]]


async def eventually(condition: Condition, *, timeout: float = 30.0, every: float = 0.05) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await condition():
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"condition not met within {timeout}s")
        await asyncio.sleep(every)


@pytest.fixture
async def service_pg_url(migrated_templates: MigratedTemplates) -> AsyncIterator[str]:
    """Contacts' database, at its schema already: a copy of one migrated once."""
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
    )


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
def built_app(tmp_path: Path) -> FastAPI:
    """The app as built, never started: its routes and OpenAPI document need no
    database, broker or relay, which cost a started app's tests seconds each."""
    return create_app(
        Settings(
            database_url=f"sqlite:///{tmp_path / 'contacts.db'}",
            jwt_secret=SecretStr(SECRET),
            log_level="WARNING",
        )
    )


@dataclass
class Api:
    """An HTTP client of the app plus tokens for any tenant and role."""

    client: httpx.AsyncClient
    settings: Settings

    def auth(
        self, tenant: str = "acme", roles: Iterable[str] = ("admin",), subject: str = "u-1"
    ) -> dict[str, str]:
        token = issue_token(self.settings.auth(), subject, tenant, roles)
        return {"Authorization": f"Bearer {token}"}

    async def register(self, tenant: str = "acme", **body: Any) -> str:
        body.setdefault("kind", "person")
        body.setdefault("name", "王芳")
        response = await self.client.post(
            "/api/v1/customers", json=body, headers=self.auth(tenant)
        )
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    async def get(self, customer_id: str, tenant: str = "acme") -> dict[str, Any]:
        response = await self.client.get(
            f"/api/v1/customers/{customer_id}", headers=self.auth(tenant)
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def search(self, tenant: str = "acme", **params: Any) -> list[dict[str, Any]]:
        response = await self.client.get(
            "/api/v1/customers", params=params, headers=self.auth(tenant)
        )
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        return items


@pytest.fixture
async def api(app: FastAPI, settings: Settings) -> AsyncIterator[Api]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://contacts") as client:
        yield Api(client, settings)


@pytest.fixture
async def sqlite_api(tmp_path: Path, kafka: KafkaSettings) -> AsyncIterator[Api]:
    """The same app on the embedded default: SQLite in ``tmp_path/contacts.db``."""
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'contacts.db'}",
        kafka_bootstrap_servers=kafka.bootstrap_servers,
        kafka_partitions=kafka.partitions,
        jwt_secret=SecretStr(SECRET),
        log_level="WARNING",
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://contacts") as client:
            yield Api(client, settings)


@dataclass(frozen=True)
class Published:
    key: bytes
    headers: dict[str, bytes]
    value: bytes

    @property
    def type(self) -> str:
        return self.headers["ce_type"].decode()

    @property
    def data(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.value)
        return loaded


async def read_topic(
    kafka: KafkaSettings, until: Callable[[list[Published]], bool], timeout: float = 30.0
) -> list[Published]:
    """Everything on the contacts topic, read from the start until ``until`` holds."""
    consumer = AIOKafkaConsumer(
        TOPIC,
        bootstrap_servers=kafka.bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    seen: list[Published] = []
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while not until(seen):
            if asyncio.get_running_loop().time() > deadline:
                pytest.fail(f"expected events not on {TOPIC} within {timeout}s: {seen}")
            for records in (await consumer.getmany(timeout_ms=200)).values():
                seen += [Published(r.key, dict(r.headers), r.value) for r in records]
    finally:
        await consumer.stop()
    return seen
