"""Topics are made before anything is published, even when the broker is late."""

from __future__ import annotations

import asyncio

from aiokafka.admin import AIOKafkaAdminClient

from libs.events.kafka import KafkaSettings, ensure_topics
from libs.platform.broker import EmbeddedBroker, free_port


async def test_a_broker_that_answers_only_after_a_while_still_gets_its_topics() -> None:
    broker = EmbeddedBroker(free_port())
    settings = KafkaSettings(bootstrap_servers=broker.bootstrap_servers, request_timeout_ms=2000)
    # Asked while nothing listens yet; the broker comes up two seconds later.
    asking = asyncio.create_task(ensure_topics(settings, ["crm.late.events"]))
    await asyncio.sleep(2)
    assert not asking.done()
    await asyncio.to_thread(broker.start)
    try:
        await asyncio.wait_for(asking, timeout=60)
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap_servers)
        await admin.start()
        try:
            assert "crm.late.events" in await admin.list_topics()
        finally:
            await admin.close()
    finally:
        broker.stop()
