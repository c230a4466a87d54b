"""Ops never read "no lag" while the projection is stalled: PostgreSQL + broker.

A read-only replica (no projector of its own) serves a projection whose saved
checkpoints are beyond the end of a topic the broker lost and got back shorter.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest_asyncio
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from libs.auth import issue_token
from libs.events import metrics
from libs.events.checkpoints import checkpoints, create_runtime_tables
from libs.events.kafka import KafkaSettings
from services.customer360.app import create_app
from services.customer360.settings import Settings
from services.customer360.tests.conftest import (
    CONTACTS_TOPIC,
    ContactsTopic,
    CustomerStream,
    eventually,
)
from services.customer360.tests.test_api import register


@pytest_asyncio.fixture
async def replica(pg_url: str, kafka: KafkaSettings) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        database_url=pg_url,
        kafka_bootstrap_servers=kafka.bootstrap_servers,
        kafka_partitions=kafka.partitions,
        run_projector=False,
        lag_refresh_seconds=0.2,
    )
    app: FastAPI = create_app(settings)
    token = issue_token(settings.auth(), "u-ops", "acme", ["viewer"])
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://customer360",
            headers={"Authorization": f"Bearer {token}"},
        ) as client:
            yield client


async def test_a_checkpoint_beyond_the_topics_end_is_reported_stalled_with_its_lag(
    pg_engine: AsyncEngine,
    kafka: KafkaSettings,
    contacts: ContactsTopic,
    replica: httpx.AsyncClient,
) -> None:
    # What the projector had read before the broker lost the topic: 100 per partition.
    async with pg_engine.begin() as conn:
        await conn.run_sync(create_runtime_tables)
        await conn.execute(
            checkpoints.insert(),
            [
                {
                    "projection": "customer360.g1",
                    "topic": CONTACTS_TOPIC,
                    "partition": p,
                    "next_offset": 100,
                    "updated_at": datetime.now(UTC),
                }
                for p in range(kafka.partitions)
            ],
        )
    # The topic came back empty; two customers registered since.
    await contacts.publish(register(CustomerStream("acme")), register(CustomerStream("acme")))

    status = (await replica.get("/api/v1/projections/customer360/status")).json()

    assert status["lag_events"] == 2
    assert status["stalled"] is True
    assert status["lag_seconds"] > 0
    assert {p["state"] for p in status["partitions"]} == {"beyond_end"}

    async def health_says_stalled() -> bool:
        health = await replica.get("/api/v1/projections/customer360/health")
        return health.status_code == 503 and health.json()["status"] == "stalled"

    await eventually(health_says_stalled, timeout=10)
    assert metrics.PROJECTION_STALLED.labels("customer360")._value.get() == 1
