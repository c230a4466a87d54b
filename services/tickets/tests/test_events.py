"""What the tickets service publishes: CloudEvents on crm.tickets.events, key = customer."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer

from libs.events.kafka import KafkaSettings, service_topic
from services.tickets.tests.conftest import Api


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
    kafka: KafkaSettings,
    until: Callable[[list[Published]], bool],
    topic: str = service_topic("tickets"),
    timeout: float = 30.0,
) -> list[Published]:
    """Everything on ``topic``, read from the start until ``until`` holds."""
    consumer = AIOKafkaConsumer(
        topic,
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
                pytest.fail(f"expected events not on {topic} within {timeout}s: {seen}")
            for records in (await consumer.getmany(timeout_ms=200)).values():
                seen += [Published(r.key, dict(r.headers), r.value) for r in records]
    finally:
        await consumer.stop()
    return seen


async def test_ticket_events_are_published_keyed_by_the_customer(
    api: Api, kafka: KafkaSettings
) -> None:
    customer = await api.register()
    ticket = await api.open(customer, requester_phone="138 0013 8000")
    await api.post(f"/api/v1/tickets/{ticket['id']}/replies", {"body": "收到"})

    published = await read_topic(
        kafka, lambda seen: any(p.type.endswith("ticket_replied.v1") for p in seen)
    )

    # Delivery is at least once: a relay retry may repeat a message; count each event once.
    published = list({p.headers["ce_id"]: p for p in published}.values())
    types = [p.type for p in published]
    assert types == ["crm.tickets.ticket_opened.v1", "crm.tickets.ticket_replied.v1"]
    assert {p.key.decode() for p in published} == {customer}
    assert published[0].headers["ce_subject"].decode() == ticket["id"]
    # The subscriber reads the requester's phone in the clear; the store keeps it sealed.
    assert published[0].data["requester_phone"] == "138 0013 8000"
