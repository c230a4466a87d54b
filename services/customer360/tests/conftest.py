"""Given: what the contacts service would have published. The projector reads it from
a real broker, exactly as in production (binary-mode CloudEvents on crm.contacts.events)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio
from aiokafka import AIOKafkaProducer
from sqlalchemy import Connection, inspect, select
from sqlalchemy.ext.asyncio import AsyncEngine

from libs.events.catalog import DomainEvent
from libs.events.envelope import EventEnvelope
from libs.events.kafka import KafkaSettings, ensure_topics, service_topic
from libs.platform.runtime import Projected
from services.customer360.handlers import Projector
from services.customer360.read_model.reader import Customer360Reader
from services.customer360.read_model.writer import Customer360Projection
from testing.consumers import send_retrying

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
CONTACTS_TOPIC = service_topic("contacts")
SCHEMA = "https://schemas.crm.example/events"


async def eventually(
    condition: Callable[[], Awaitable[bool]], *, timeout: float = 30.0, every: float = 0.05
) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await condition():
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"condition not met within {timeout}s")
        await asyncio.sleep(every)


class CustomerStream:
    """One customer's stream in the contacts service: versions count up from 1."""

    def __init__(self, tenant_id: str, customer_id: str | None = None) -> None:
        self.tenant_id = tenant_id
        self.customer_id = customer_id or str(uuid.uuid4())
        self.version = 0

    def __call__(self, event: DomainEvent, *, minutes: int | None = None) -> EventEnvelope:
        self.version += 1
        at = T0 + timedelta(minutes=self.version if minutes is None else minutes)
        return EventEnvelope(
            id=str(uuid.uuid4()),
            source="/crm/contacts",
            type=type(event).type_name,
            subject=self.customer_id,
            time=at,
            tenantid=self.tenant_id,
            partitionkey=self.customer_id,
            sequence=self.version,
            data=event.model_dump(mode="json"),
            dataschema=f"{SCHEMA}/{type(event).type_name}.json",
        )


class ContactsTopic:
    """Publishes envelopes the way the outbox relay does (key = customer id)."""

    def __init__(self, kafka: KafkaSettings, topic: str = CONTACTS_TOPIC) -> None:
        self.kafka = kafka
        self.topic = topic
        self.producer: AIOKafkaProducer | None = None

    async def publish(self, *envelopes: EventEnvelope) -> None:
        if self.producer is None:
            await ensure_topics(self.kafka, [self.topic])
            self.producer = AIOKafkaProducer(bootstrap_servers=self.kafka.bootstrap_servers)
            await self.producer.start()
        for envelope in envelopes:
            record = envelope.to_kafka()
            await send_retrying(
                self.producer,
                self.topic,
                key=record.key,
                value=record.value,
                headers=record.headers,
            )

    async def close(self) -> None:
        if self.producer is not None:
            await self.producer.stop()


@pytest_asyncio.fixture
async def contacts(kafka: KafkaSettings) -> AsyncIterator[ContactsTopic]:
    topic = ContactsTopic(kafka)
    yield topic
    await topic.close()


class RunningProjector:
    def __init__(self, engine: AsyncEngine, kafka: KafkaSettings) -> None:
        self.engine = engine
        self.projector = Projector(engine, kafka, generation_check_seconds=0.2)
        self.reader = Customer360Reader(engine, generation_check_seconds=0.2)
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        # As the service runs it: tables made first, then kept running (ServiceRuntime).
        projected = Projected(self.projector.live, supervision=self.projector.supervision)
        await projected.prepare()
        self.task = asyncio.create_task(projected.job(self.engine, "customer360").run(self.stop))

    async def close(self) -> None:
        self.stop.set()
        if self.task is not None:
            await asyncio.wait_for(self.task, timeout=30)

    async def version(self, tenant_id: str, customer_id: str) -> int | None:
        return await self.reader.version_of(tenant_id, customer_id)

    async def until_version(
        self, tenant_id: str, customer_id: str, version: int, timeout: float = 30.0
    ) -> None:
        async def reached() -> bool:
            current = await self.version(tenant_id, customer_id)
            return current is not None and current >= version

        await eventually(reached, timeout=timeout)


@pytest_asyncio.fixture
async def projector(
    pg_engine: AsyncEngine, kafka: KafkaSettings
) -> AsyncIterator[RunningProjector]:
    running = RunningProjector(pg_engine, kafka)
    await running.start()
    yield running
    await running.close()


# Values as the database hands them back: each column's own Python type.
Rows = dict[str, list[dict[str, Any]]]


async def snapshot(engine: AsyncEngine, projection: Customer360Projection) -> Rows:
    """Every row of every table of one generation, in a stable order."""
    tables = [
        projection.tables.customers,
        projection.tables.timeline,
        projection.tables.merges,
        projection.tables.streams,
    ]
    result: Rows = {}
    async with engine.connect() as conn:
        for table in tables:
            base = table.name.removesuffix(f"_g{projection.generation}")
            exists = await conn.run_sync(_has_table, table.name)
            if not exists:
                result[base] = []
                continue
            rows = await conn.execute(select(table).order_by(*table.primary_key.columns))
            result[base] = [dict(r) for r in rows.mappings()]
    return result


def _has_table(conn: Connection, name: str) -> bool:
    return bool(inspect(conn).has_table(name))
