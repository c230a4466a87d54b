"""`make run`'s default database is SQLite: webhooks are filed, retried and delivered
there as on PostgreSQL (the broker and the receiver are real)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from libs.events.kafka import KafkaSettings, service_topic
from services.alerts.settings import Settings
from services.alerts.tests.conftest import SECRET, eventually
from services.alerts.tests.test_webhooks import (
    Receiver,
    deliveries,
    owner_changed,
    receiver,  # noqa: F401  (the fixture)
    running,
    subscribe,
    tenant,
)


@pytest.fixture
def sqlite_settings(tmp_path: Path, kafka: KafkaSettings) -> Settings:
    return Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'alerts.db'}",
        kafka_bootstrap_servers=kafka.bootstrap_servers,
        kafka_partitions=kafka.partitions,
        jwt_secret=SecretStr(SECRET),
        log_level="WARNING",
        run_sweep=False,
        webhook_first_retry_seconds=0.2,
        webhook_poll_seconds=0.05,
        webhook_allow_insecure_targets=True,
    )


async def test_a_webhook_is_retried_and_delivered_on_sqlite(
    sqlite_settings: Settings,
    kafka: KafkaSettings,
    receiver: Receiver,  # noqa: F811
) -> None:
    acme = tenant()
    async with running(sqlite_settings, kafka) as api:
        created = await subscribe(api, acme, receiver)
        receiver.statuses = [503]
        event = owner_changed("c-1", acme)
        await api.send(service_topic("contacts"), [event, event])

        async def delivered() -> bool:
            log = await deliveries(api, acme, created["id"])
            return bool(log) and log[0]["status"] == "delivered"

        await eventually(delivered)
        log = await deliveries(api, acme, created["id"])
    assert [r["status"] for r in receiver.of(event.id)] == [503, 200]
    assert all(r["verified"] for r in receiver.received)
    assert [(d["event_id"], d["attempts"]) for d in log] == [(event.id, 2)]
