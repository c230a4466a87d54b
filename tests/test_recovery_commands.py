"""The recovery commands an operator runs, run as an operator would: `crm republish` and
`crm rebuild` as processes, given the platform's own DATABASE_URL (as `make run` got it).

The broker here is a second, empty one: what a restarted in-memory broker (or a recreated
topic) looks like to the platform.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio
from aiokafka import AIOKafkaConsumer
from pydantic import SecretStr
from sqlalchemy.engine import make_url

from libs.auth import issue_token
from libs.events.kafka import KafkaSettings, service_topic
from libs.platform.broker import EmbeddedBroker
from libs.platform.cli import service_database_url
from services.contacts.app import create_app as create_contacts
from services.contacts.settings import Settings as ContactsSettings

SECRET = "recovery-tests-secret-at-least-32-bytes-long"
PEOPLE = [("王芳", "wf@example.com"), ("李娜", "ln@example.com"), ("张伟", "zw@example.com")]


@pytest_asyncio.fixture
async def platform_url(pg_url: str) -> AsyncIterator[str]:
    """The platform's DATABASE_URL; `crm run` derives `<db>_contacts`, `<db>_customer360`."""
    created = [service_database_url(pg_url, name) for name in ("contacts", "customer360")]
    admin_url = make_url(pg_url).set(database="postgres").render_as_string(hide_password=False)
    admin = await asyncpg.connect(admin_url)
    try:
        for url in created:
            await admin.execute(f'CREATE DATABASE "{make_url(url).database}"')
        yield pg_url
    finally:
        for url in created:
            await admin.execute(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')
        await admin.close()


async def _register_everyone(settings: ContactsSettings) -> None:
    app = create_contacts(settings)
    token = issue_token(settings.auth(), "u-1", "acme", ["admin"])
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://contacts") as client:
            for name, email in PEOPLE:
                response = await client.post(
                    "/api/v1/customers",
                    json={"kind": "person", "name": name, "email": email},
                    headers={"Authorization": f"Bearer {token}"},
                )
                assert response.status_code == 201, response.text


async def _crm(*args: str, env: dict[str, str]) -> str:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.bootstrap",
        *args,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=180)
    text = output.decode()
    assert process.returncode == 0, text
    return text


async def _registrations_on(kafka: KafkaSettings, count: int) -> list[dict[str, Any]]:
    consumer = AIOKafkaConsumer(
        service_topic("contacts"),
        bootstrap_servers=kafka.bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    found: list[dict[str, Any]] = []
    try:
        deadline = asyncio.get_running_loop().time() + 30
        while len(found) < count and asyncio.get_running_loop().time() < deadline:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                for record in records:
                    headers = dict(record.headers)
                    if headers["ce_type"].decode().startswith("crm.contacts.customer_registered"):
                        found.append(json.loads(record.value))
    finally:
        await consumer.stop()
    return found


async def test_republish_then_rebuild_bring_a_lost_topic_and_the_360_view_back(
    platform_url: str, kafka: KafkaSettings
) -> None:
    contacts_settings = ContactsSettings(
        database_url=service_database_url(platform_url, "contacts"),
        kafka_bootstrap_servers=kafka.bootstrap_servers,
        kafka_partitions=kafka.partitions,
        jwt_secret=SecretStr(SECRET),
        log_level="WARNING",
    )
    await _register_everyone(contacts_settings)

    with EmbeddedBroker() as emptied:  # the broker came back with nothing
        env = {
            "DATABASE_URL": platform_url,
            "KAFKA_BOOTSTRAP_SERVERS": emptied.bootstrap_servers,
            "KAFKA_PARTITIONS": str(kafka.partitions),
            "LOG_LEVEL": "WARNING",
        }
        republished = await _crm("republish", "contacts", env=env)
        assert "republished 3 events of contacts" in republished

        # Published through the service's own policy: readable, not sealed for the store.
        again = KafkaSettings(bootstrap_servers=emptied.bootstrap_servers)
        registered = await _registrations_on(again, len(PEOPLE))
        assert sorted((e["name"], e["email"]) for e in registered) == sorted(PEOPLE)

        rebuilt = await _crm("rebuild", "customer360", env=env)
        assert "customer360: generation 1 is now active" in rebuilt

    view_url = make_url(service_database_url(platform_url, "customer360"))
    conn = await asyncpg.connect(
        view_url.set(drivername="postgresql").render_as_string(hide_password=False)
    )
    try:
        names = await conn.fetch("SELECT name FROM customer360_customers_g1 ORDER BY name")
    finally:
        await conn.close()
    assert sorted(row["name"] for row in names) == sorted(name for name, _ in PEOPLE)


def test_a_url_that_already_names_the_service_database_is_kept() -> None:
    base = "postgresql://postgres@127.0.0.1/crm"
    assert service_database_url(base, "contacts") == "postgresql://postgres@127.0.0.1/crm_contacts"
    given = "postgresql://postgres@127.0.0.1/crm_contacts"
    assert service_database_url(given, "contacts") == given
    assert service_database_url("", "contacts") == "sqlite+aiosqlite:///var/contacts.db"
    sqlite = "sqlite+aiosqlite:///var/contacts.db"
    assert service_database_url(sqlite, "contacts") == sqlite


@pytest.mark.parametrize("command", [("republish", "nowhere"), ("rebuild", "nowhere")])
async def test_an_unknown_service_or_projection_is_named_in_the_error(
    command: tuple[str, str],
) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.bootstrap",
        *command,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    assert process.returncode == 2
    assert "nowhere" in output.decode()


def test_crm_run_makes_one_database_per_service_and_none_for_the_broker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from libs.platform.cli import platform_processes, postgres_databases
    from services.bootstrap import SERVICES

    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1/crm")
    processes = platform_processes(
        SERVICES,
        database_url="postgresql://postgres@127.0.0.1/crm",
        bootstrap="127.0.0.1:9092",
        ports={s.name: s.port for s in SERVICES},
        broker_port=9092,
    )

    made = sorted(make_url(url).database for url in postgres_databases(processes))
    assert made == sorted(f"crm_{s.name}" for s in SERVICES)
    broker = next(p for p in processes if p.name == "broker")
    assert "DATABASE_URL" not in broker.env
