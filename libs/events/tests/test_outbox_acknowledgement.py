"""The relay deletes outbox rows only for what the broker acknowledged (PostgreSQL and
SQLite, the real broker; one acknowledgement is made to fail, deterministically)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka.errors import KafkaError, NotLeaderForPartitionError
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from libs.events.kafka import KafkaSettings
from libs.events.store import EventStore, outbox
from libs.events.tests.conftest import relay_for
from libs.events.tests.sample import visit


async def outbox_rows(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(outbox)) or 0)


async def test_rows_stay_in_the_outbox_when_the_broker_does_not_acknowledge_them(
    any_engine: AsyncEngine, kafka: KafkaSettings, unique: str
) -> None:
    store = EventStore(any_engine)
    await store.create_tables()
    for n in range(6):  # streams on every partition
        await store.append("acme", f"c-{n}", 0, [visit(f"c-{n}", n + 1)])
    relay = relay_for(store, kafka, f"crm.sample.{unique}")
    producer = await relay._ensure_producer()
    send_batch = producer.send_batch
    refused: list[int] = []

    async def one_acknowledgement_fails(*args: Any, partition: int, **kwargs: Any) -> Any:
        sent = await send_batch(*args, partition=partition, **kwargs)
        if refused:
            return sent
        # The broker got it but the acknowledgement says it failed (a leader change).
        refused.append(partition)
        failed: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        failed.set_exception(NotLeaderForPartitionError())
        return failed

    producer.send_batch = one_acknowledgement_fails
    with pytest.raises(KafkaError):
        await relay.relay_once()

    assert refused, "the failure was never injected"
    assert await outbox_rows(any_engine) == 6
    producer.send_batch = send_batch
    assert await relay.relay_once() == 6  # sent again, all of it (consumers drop duplicates)
    assert await outbox_rows(any_engine) == 0
