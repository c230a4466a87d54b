"""A service that consumes other services' events, under test: its clock, a wait for what
happens asynchronously, and a client that calls its API and publishes the other
services' events the way their relays do (binary CloudEvents, keyed by customer)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError, NodeNotReadyError
from fastapi import FastAPI

from libs.auth import issue_token
from libs.events.catalog import DomainEvent
from libs.events.envelope import EventEnvelope
from libs.events.kafka import KafkaSettings, ensure_topics, new_producer, service_topic
from libs.platform.settings import ServiceSettings


async def send_retrying(producer: AIOKafkaProducer, topic: str, **message: Any) -> None:
    """``send_and_wait``, asked again while the broker refuses the connection (on a
    loaded machine the embedded broker sometimes does, for a moment). Only errors that
    mean nothing was sent are retried, so no message goes twice."""
    for attempt in range(8):
        try:
            await producer.send_and_wait(topic, **message)
            return
        except (KafkaConnectionError, NodeNotReadyError):
            if attempt == 7:
                raise
            await asyncio.sleep(min(0.25 * 2**attempt, 5.0))


Condition = Callable[[], Awaitable[bool]]


async def eventually(condition: Condition, *, timeout: float = 30.0, every: float = 0.05) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await condition():
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"condition not met within {timeout}s")
        await asyncio.sleep(every)


@dataclass
class Clock:
    """The service's injected clock: it moves only when a test moves it."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def envelopes_of(
    service: str,
    customer_id: str,
    events: Sequence[DomainEvent],
    *,
    tenant: str,
    at: datetime,
    ids: Iterable[str] | None = None,
) -> list[EventEnvelope]:
    """``events`` as ``service``'s relay would put them on its topic, at ``at``."""
    chosen = list(ids) if ids is not None else [str(uuid.uuid4()) for _ in events]
    return [
        EventEnvelope(
            id=event_id,
            source=f"/crm/{service}",
            type=type(event).type_name,
            subject=customer_id,
            time=at,
            tenantid=tenant,
            partitionkey=customer_id,
            sequence=1,
            data=event.model_dump(mode="json"),
        )
        for event_id, event in zip(chosen, events, strict=True)
    ]


@dataclass
class ConsumerClient:
    """An HTTP client of the app, tokens for any tenant and role, and a publisher of
    other services' events; a service's tests add its reads and how far it consumed."""

    client: httpx.AsyncClient
    settings: ServiceSettings
    kafka: KafkaSettings
    app: FastAPI
    published: list[EventEnvelope] = field(default_factory=list)
    # How long caught_up waits: a projector that folds whole histories may want longer.
    wait_seconds: ClassVar[float] = 30.0

    def auth(
        self, tenant: str = "acme", roles: Iterable[str] = ("admin",), subject: str = "u-1"
    ) -> dict[str, str]:
        token = issue_token(self.settings.auth(), subject, tenant, roles)
        return {"Authorization": f"Bearer {token}"}

    async def publish_envelopes(self, service: str, envelopes: list[EventEnvelope]) -> None:
        topic = service_topic(service)
        await ensure_topics(self.kafka, [topic])
        await self.send(topic, envelopes)

    async def send(self, topic: str, envelopes: Iterable[EventEnvelope]) -> None:
        producer = new_producer(self.kafka, client_id="consumer-tests")
        await producer.start()
        try:
            for envelope in envelopes:
                record = envelope.to_kafka()
                await send_retrying(
                    producer, topic, key=record.key, value=record.value, headers=record.headers
                )
                self.published.append(envelope)
        finally:
            await producer.stop()

    async def consumed(self) -> int:
        """How many events the service has taken from the topics so far."""
        raise NotImplementedError

    async def caught_up(self) -> None:
        """Wait until the service has taken every event published so far."""
        want = len(self.published)

        async def done() -> bool:
            return await self.consumed() >= want

        await eventually(done, timeout=self.wait_seconds)
