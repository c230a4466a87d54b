"""The loyalty app against real PostgreSQL and the real broker, driven over HTTP and
fed other services' events the way they publish them (CloudEvents on their topics)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from libs.auth import issue_token
from libs.events.catalog import DomainEvent
from libs.events.envelope import EventEnvelope
from libs.events.kafka import KafkaSettings, ensure_topics, new_producer, service_topic
from libs.events.store import EventStore
from libs.platform.db import create_engine
from services.loyalty.app import create_app
from services.loyalty.handlers import Loyalty
from services.loyalty.settings import Settings

SECRET = "loyalty-tests-secret-at-least-32-bytes-long"
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)

Condition = Callable[[], Awaitable[bool]]


async def eventually(condition: Condition, *, timeout: float = 30.0, every: float = 0.05) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await condition():
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"condition not met within {timeout}s")
        await asyncio.sleep(every)


@dataclass
class Clock:
    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def settings(pg_url: str, kafka: KafkaSettings) -> Settings:
    return Settings(
        database_url=pg_url,
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


@dataclass
class Api:
    """An HTTP client of the app, tokens for any tenant and role, and a publisher of
    other services' events."""

    client: httpx.AsyncClient
    settings: Settings
    kafka: KafkaSettings
    app: FastAPI
    published: list[EventEnvelope] = field(default_factory=list)

    def auth(
        self, tenant: str = "acme", roles: Iterable[str] = ("admin",), subject: str = "u-1"
    ) -> dict[str, str]:
        token = issue_token(self.settings.auth(), subject, tenant, roles)
        return {"Authorization": f"Bearer {token}"}

    async def publish(
        self,
        service: str,
        customer_id: str,
        *events: DomainEvent,
        tenant: str = "acme",
        ids: Iterable[str] | None = None,
    ) -> list[EventEnvelope]:
        """Publish as the other service's relay would (binary CloudEvents, keyed by customer)."""
        topic = service_topic(service)
        await ensure_topics(self.kafka, [topic])
        chosen = list(ids) if ids is not None else [str(uuid.uuid4()) for _ in events]
        envelopes = [
            EventEnvelope(
                id=event_id,
                source=f"/crm/{service}",
                type=type(event).type_name,
                subject=customer_id,
                time=T0,
                tenantid=tenant,
                partitionkey=customer_id,
                sequence=1,
                data=event.model_dump(mode="json"),
            )
            for event_id, event in zip(chosen, events, strict=True)
        ]
        await self.send(topic, envelopes)
        return envelopes

    async def send(self, topic: str, envelopes: Iterable[EventEnvelope]) -> None:
        producer = new_producer(self.kafka, client_id="loyalty-tests")
        await producer.start()
        try:
            for envelope in envelopes:
                record = envelope.to_kafka()
                await producer.send_and_wait(
                    topic, key=record.key, value=record.value, headers=record.headers
                )
                self.published.append(envelope)
        finally:
            await producer.stop()

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
