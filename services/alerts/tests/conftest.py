"""The alerts app against real PostgreSQL and the real broker, driven over HTTP and
fed other services' events the way they publish them (CloudEvents on their topics)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from fastapi import FastAPI
from pydantic import SecretStr

from libs.auth import issue_token
from libs.events.catalog import DomainEvent
from libs.events.envelope import EventEnvelope
from libs.events.kafka import KafkaSettings, ensure_topics, new_producer, service_topic
from libs.events.store import EventStore
from libs.platform.db import create_engine
from services.alerts.app import create_app
from services.alerts.handlers import Alerts
from services.alerts.settings import Settings

SECRET = "alerts-tests-secret-at-least-32-bytes-long"
T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)

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
        # Tests sweep when they mean to (handlers.sweep), never on a timer.
        run_sweep=False,
    )


@pytest.fixture
async def app(settings: Settings, clock: Clock) -> AsyncIterator[FastAPI]:
    alerts = Alerts(EventStore(create_engine(settings.database_url)), clock=clock)
    app = create_app(settings, alerts)
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
        at: datetime | None = None,
    ) -> list[str]:
        """Publish as the other service's relay would (binary CloudEvents, keyed by
        customer), at ``at`` (the envelope's time); returns the events' ids."""
        topic = service_topic(service)
        await ensure_topics(self.kafka, [topic])
        envelopes = [
            EventEnvelope(
                id=str(uuid.uuid4()),
                source=f"/crm/{service}",
                type=type(event).type_name,
                subject=customer_id,
                time=at or T0,
                tenantid=tenant,
                partitionkey=customer_id,
                sequence=1,
                data=event.model_dump(mode="json"),
            )
            for event in events
        ]
        await self.send(topic, envelopes)
        return [e.id for e in envelopes]

    async def send(self, topic: str, envelopes: Iterable[EventEnvelope]) -> None:
        producer = new_producer(self.kafka, client_id="alerts-tests")
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

    async def consumed(self) -> int:
        """How many events the projector has taken from the topics so far."""
        runner = self.app.state.projector
        return sum(runner.progress.values())

    async def caught_up(self) -> None:
        """Wait until the projector has taken every event published so far."""
        want = len(self.published)

        async def done() -> bool:
            return await self.consumed() >= want

        await eventually(done)

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
