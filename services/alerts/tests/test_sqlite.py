"""`make run`'s default database is SQLite: the churn projector, the sweep and the
rules work there as on PostgreSQL (the broker is the real one)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from libs.events.catalog.alerts import ChurnRiskRaised
from libs.events.kafka import KafkaSettings
from services.alerts.handlers import sweep
from services.alerts.settings import Settings
from services.alerts.tests.conftest import SECRET, Api
from services.alerts.tests.test_api import complaints_and_a_key_contact_change, order, registered
from services.alerts.tests.test_birthday_reminders import birthdays_remind_once_and_erasure_forgets
from testing.consumers import Clock


@pytest.fixture
def settings(tmp_path: Path, kafka: KafkaSettings) -> Settings:
    return Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'alerts.db'}",
        kafka_bootstrap_servers=kafka.bootstrap_servers,
        kafka_partitions=kafka.partitions,
        jwt_secret=SecretStr(SECRET),
        log_level="WARNING",
        run_sweep=False,
    )


async def test_a_rise_to_high_and_the_rules_on_sqlite(api: Api, clock: Clock) -> None:
    await complaints_and_a_key_contact_change(api, "c-1")
    await api.publish("contacts", "c-2", registered("c-2"))
    await api.publish("pipeline", "c-2", *[order("c-2", f"o{n}", n) for n in (90, 60, 30, 5)])
    await api.caught_up()

    risk = await api.risk("c-1")
    assert risk["level"] == "high" and len(risk["reasons"]) == 2
    clock.advance(days=100)
    await sweep(api.app.state.alerts)
    for customer in ("c-1", "c-2"):
        stream = await api.app.state.alerts.store.read_stream("acme", customer)
        assert [e.type for e in stream].count(ChurnRiskRaised.type_name) == 1, customer
    rules = (await api.client.get("/api/v1/churn/rules", headers=api.auth())).json()
    saved = await api.client.put("/api/v1/churn/rules", json=rules, headers=api.auth())
    assert saved.status_code == 200, saved.text


async def test_birthday_reminders_on_sqlite(api: Api, clock: Clock) -> None:
    await birthdays_remind_once_and_erasure_forgets(api, clock)
