from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from libs.events.kafka import KafkaSettings
from libs.events.outbox import OutboxRelay
from libs.events.store import EventStore
from libs.events.tests.sample import catalog

Condition = Callable[[], Awaitable[bool]]


async def eventually(condition: Condition, *, timeout: float = 30.0, every: float = 0.05) -> None:
    """Wait for an asynchronous condition; fail the test with a clear message if it never holds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await condition():
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"condition not met within {timeout}s")
        await asyncio.sleep(every)


_open_relays: list[OutboxRelay] = []


def relay_for(store: EventStore, kafka: KafkaSettings, topic: str) -> OutboxRelay:
    relay = OutboxRelay(
        store,
        kafka,
        service="sample",
        topic=topic,
        source="/crm/sample",
        schema_url=catalog.schema_url,
    )
    _open_relays.append(relay)
    return relay


@pytest.fixture(autouse=True)
async def _close_relays() -> AsyncIterator[None]:
    yield
    while _open_relays:
        await _open_relays.pop().close()
