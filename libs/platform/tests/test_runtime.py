"""The service runtime: what a service declares runs beside its HTTP server, restarted
after a failure, in one process where it leads, and stops within its bound."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from libs.events.kafka import KafkaSettings
from libs.platform.background import Supervision
from libs.platform.db import create_engine
from libs.platform.runtime import Job, ServiceRuntime, continuous, leading, periodic

ENV = """
from sqlalchemy import Column, Integer, MetaData, Table

from libs.platform.migrations import run_migrations

metadata = MetaData()
Table("visits", metadata, Column("id", Integer, primary_key=True))
run_migrations(target_metadata=metadata)
"""

FIRST = """
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.create_table("visits", sa.Column("id", sa.Integer, primary_key=True))
"""


@pytest.fixture
def migrations(tmp_path: Path) -> Path:
    folder = tmp_path / "migrations"
    (folder / "versions").mkdir(parents=True)
    (folder / "env.py").write_text(ENV)
    (folder / "versions" / "0001_visits.py").write_text(FIRST)
    return folder


def runtime_for(
    database: Path, migrations: Path, jobs: list[Job], stop_seconds: float = 10.0
) -> ServiceRuntime:
    engine = create_engine(f"sqlite:///{database}")
    return ServiceRuntime(
        "visits", engine, KafkaSettings(), migrations, jobs=jobs, stop_seconds=stop_seconds
    )


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_the_schema_is_migrated_before_the_service_serves(
    tmp_path: Path, migrations: Path
) -> None:
    runtime = runtime_for(tmp_path / "visits.db", migrations, [])
    app = FastAPI(lifespan=runtime.lifespan)

    @app.get("/visits")
    async def visits() -> int:
        async with runtime.engine.connect() as conn:
            return int((await conn.execute(text("SELECT count(*) FROM visits"))).scalar_one())

    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://visits"
        ) as client:
            assert (await client.get("/visits")).json() == 0


async def test_a_failing_job_is_restarted_and_the_others_keep_running(
    tmp_path: Path, migrations: Path
) -> None:
    attempts = 0
    rounds = 0
    watched = Supervision()

    async def flaky(stop: asyncio.Event) -> None:
        nonlocal attempts
        attempts += 1
        if attempts < 3:
            raise ConnectionError("broker away")
        await stop.wait()

    async def count() -> None:
        nonlocal rounds
        rounds += 1

    runtime = runtime_for(
        tmp_path / "visits.db",
        migrations,
        [continuous("flaky", flaky, supervision=watched), periodic("count", 0.01, count)],
    )
    app = FastAPI(lifespan=runtime.lifespan)
    async with app.router.lifespan_context(app):
        await until(lambda: attempts == 3 and watched.running)
        await until(lambda: rounds >= 3)
    assert watched.restarts == 2
    assert watched.last_error == "ConnectionError: broker away"
    assert watched.running is False


async def test_a_job_that_ignores_the_stop_is_cancelled_after_the_bound(
    tmp_path: Path, migrations: Path
) -> None:
    cancelled = asyncio.Event()

    async def stubborn(stop: asyncio.Event) -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    runtime = runtime_for(
        tmp_path / "visits.db", migrations, [Job("stubborn", stubborn)], stop_seconds=0.2
    )
    app = FastAPI(lifespan=runtime.lifespan)
    started = asyncio.get_running_loop().time()
    async with app.router.lifespan_context(app):
        await asyncio.sleep(0.05)
    assert cancelled.is_set()
    assert asyncio.get_running_loop().time() - started < 5


async def test_a_leader_job_runs_in_one_process_per_database(
    tmp_path: Path, migrations: Path
) -> None:
    running: list[str] = []

    def holder(name: str) -> Job:
        async def hold(stop: asyncio.Event) -> None:
            running.append(name)
            await stop.wait()

        return Job("visits-sweep", hold)

    first = runtime_for(tmp_path / "visits.db", migrations, [])
    second = runtime_for(tmp_path / "visits.db", migrations, [])
    first.jobs = (leading(first.engine, holder("first")),)
    second.jobs = (leading(second.engine, holder("second")),)
    one, two = FastAPI(lifespan=first.lifespan), FastAPI(lifespan=second.lifespan)
    leader = one.router.lifespan_context(one)
    await leader.__aenter__()
    await until(lambda: running == ["first"])
    async with two.router.lifespan_context(two):
        await asyncio.sleep(0.3)
        assert running == ["first"], "two processes led at once"
        await leader.__aexit__(None, None, None)
        # The leader stopped: the other takes the role over.
        await until(lambda: running == ["first", "second"], timeout=5)
