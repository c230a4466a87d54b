"""Loyalty on the embedded default (SQLite), where a connection that holds the write
lock and opens a second one waits for itself: every read of an unknown customer must
still answer at once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from libs.auth import issue_token
from libs.events.kafka import KafkaSettings
from services.loyalty.app import create_app
from services.loyalty.settings import Settings
from services.loyalty.tests.conftest import SECRET


@pytest.fixture
async def sqlite_client(tmp_path: Path, kafka: KafkaSettings) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'loyalty.db'}",
        kafka_bootstrap_servers=kafka.bootstrap_servers,
        kafka_partitions=kafka.partitions,
        jwt_secret=SecretStr(SECRET),
        log_level="WARNING",
        run_reactions=False,
    )
    app = create_app(settings)
    token = issue_token(settings.auth(), "u-1", "acme", ["admin"])
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://loyalty",
            headers={"Authorization": f"Bearer {token}"},
        ) as client:
            yield client


@pytest.mark.parametrize(
    "path", ["/api/v1/customers/nobody/loyalty", "/api/v1/customers/nobody/loyalty/ledger"]
)
async def test_an_unknown_customer_is_a_404_at_once(
    sqlite_client: httpx.AsyncClient, path: str
) -> None:
    async with asyncio.timeout(5):  # a self-deadlock waited 30 s, then answered 500
        response = await sqlite_client.get(path)

    assert response.status_code == 404, response.text
