"""Pytest fixtures for tests that cross a boundary: real PostgreSQL, real broker.

PostgreSQL: the server at ``DATABASE_URL``, else 127.0.0.1:5432 (user postgres),
else a throwaway cluster started with the local PostgreSQL binaries. Every test
gets a database of its own, dropped afterwards: empty (``pg_url``), or already at a
service's schema (``migrated_templates``).
Broker: the bundled Tansu, started on a free port for the session (and a private
one for tests that stop and start it).
"""

from __future__ import annotations

import asyncio
import glob
import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from libs.events.kafka import KafkaSettings
from libs.platform.broker import EmbeddedBroker, free_port
from libs.platform.db import create_engine
from libs.platform.migrations import migrate


def _share_the_machine_with_parallel_workers() -> None:
    """`make test` runs four pytest workers (pytest-xdist) side by side: each takes
    ports from a range of its own (two workers once started servers on one port), and
    every process the tests start keeps to four database connections, so that the
    workers' services fit in one PostgreSQL server's 100 connections."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if worker.startswith("gw") and worker[2:].isdigit():
        low = 20_000 + 1_500 * int(worker[2:])
        os.environ.setdefault("FREE_PORTS", f"{low}-{low + 1_499}")
    os.environ.setdefault("DATABASE_POOL_SIZE", "4")


# The bundled broker holds a consumer group's join for half the session timeout (a second
# per two): production's 10 s made every test whose service consumes wait 5 s for its
# first event; up to 2 s a join costs one second (docs/decisions/0090).
# Services built in the tests and the platform's processes read these from the environment.
TEST_SESSION_TIMEOUT_MS = 2_000
TEST_HEARTBEAT_INTERVAL_MS = 500
# Idle, a platform's consumers fetching every 20 ms and its relays looking at their
# outbox as often kept more than a core busy on a 2-core machine (measured: 29 CPU
# seconds in 20 idle seconds, 8 with these). The cost: up to 100 ms more per hop, and a
# relay sees another worker's appends up to 0.2 s later (its own wake it at once).
TEST_FETCH_MAX_WAIT_MS = 100
TEST_OUTBOX_IDLE_POLL_SECONDS = 0.2


def _join_consumer_groups_fast() -> None:
    os.environ.setdefault("KAFKA_SESSION_TIMEOUT_MS", str(TEST_SESSION_TIMEOUT_MS))
    os.environ.setdefault("KAFKA_HEARTBEAT_INTERVAL_MS", str(TEST_HEARTBEAT_INTERVAL_MS))


def _no_traces_unless_asked() -> None:
    """Traces off in every service a test builds, whatever the machine's environment
    says: only the tests that assert on traces turn them on (decision 0103)."""
    os.environ["OTEL_SDK_DISABLED"] = "true"


def _poll_less_while_idle() -> None:
    os.environ.setdefault("KAFKA_FETCH_MAX_WAIT_MS", str(TEST_FETCH_MAX_WAIT_MS))
    os.environ.setdefault("OUTBOX_IDLE_POLL_SECONDS", str(TEST_OUTBOX_IDLE_POLL_SECONDS))
    # No longer waits when idle (decision 0107): a test publishes after seconds of
    # set-up, and its first event would wait out the idle fetch.
    os.environ.setdefault("KAFKA_IDLE_FETCH_MAX_WAIT_MS", str(TEST_FETCH_MAX_WAIT_MS))
    os.environ.setdefault("OUTBOX_IDLE_MAX_POLL_SECONDS", str(TEST_OUTBOX_IDLE_POLL_SECONDS))


_share_the_machine_with_parallel_workers()
_join_consumer_groups_fast()
_no_traces_unless_asked()
_poll_less_while_idle()


async def _reachable(url: str) -> bool:
    try:
        conn = await asyncpg.connect(url, timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    await conn.close()
    return True


def _admin_url(url: str) -> str:
    parsed = make_url(url).set(drivername="postgresql")
    return parsed.render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A libpq URL of a PostgreSQL server the tests may create databases on."""
    candidates = [
        os.environ.get("DATABASE_URL", ""),
        "postgresql://postgres@127.0.0.1:5432/postgres",
    ]
    for url in candidates:
        if url.startswith("postgres") and asyncio.run(_reachable(_admin_url(url))):
            yield _admin_url(url)
            return
    pg_ctl = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if not pg_ctl:
        pytest.fail("no PostgreSQL server reachable and no PostgreSQL binaries to start one")
    from pytest_postgresql.executor import PostgreSQLExecutor

    port = free_port()
    datadir = Path(tempfile.mkdtemp(prefix="crm-pg-"))
    executor = PostgreSQLExecutor(
        executable=pg_ctl[-1],
        host="127.0.0.1",
        port=port,
        datadir=str(datadir / "data"),
        unixsocketdir=str(datadir),
        logfile=str(datadir / "pg.log"),
        startparams="-w",
        dbname="postgres",
        user="postgres",
        password="",
        options="",
        postgres_options="",
    )
    executor.start()
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        executor.stop()


@asynccontextmanager
async def fresh_database(
    server: str, prefix: str = "crm_test", *, template: str | None = None
) -> AsyncIterator[str]:
    """A new database on ``server`` while the block runs, empty or a copy of
    ``template``; dropped after, even with connections still open."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(server)
    try:
        await _create_database(admin, name, template)
    finally:
        await admin.close()
    try:
        yield make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        admin = await asyncpg.connect(server)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


async def _create_database(admin: asyncpg.Connection, name: str, template: str | None) -> None:
    if template is None:
        await admin.execute(f'CREATE DATABASE "{name}"')
        return
    # A copy needs its template free of sessions: the migrating engine's connections
    # may take a moment to leave after it is disposed.
    for attempt in range(50):
        try:
            await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
            return
        except asyncpg.ObjectInUseError:
            if attempt == 49:
                raise
            await asyncio.sleep(0.1)


class MigratedTemplates:
    """A database per service history, migrated to its head once per test process, that
    tests' databases are copied from (CREATE DATABASE ... TEMPLATE): a copy costs what an
    empty database costs, and the Alembic history runs once instead of once per test
    (docs/decisions/0090). Tests of the migrations themselves keep ``pg_url``: empty."""

    def __init__(self, server: str) -> None:
        self.server = server
        self.templates: dict[Path, str] = {}

    async def template(self, migrations: Path) -> str:
        if migrations not in self.templates:
            name = f"crm_template_{migrations.parent.name}_{uuid.uuid4().hex[:8]}"
            admin = await asyncpg.connect(self.server)
            try:
                await _create_database(admin, name, None)
            finally:
                await admin.close()
            engine = create_engine(
                make_url(self.server).set(database=name).render_as_string(hide_password=False)
            )
            try:
                await migrate(engine, migrations)
            finally:
                await engine.dispose()
            self.templates[migrations] = name
        return self.templates[migrations]

    @asynccontextmanager
    async def copy(self, migrations: Path, prefix: str = "crm_test") -> AsyncIterator[str]:
        """A database of its own at the head of ``migrations`` while the block runs."""
        template = await self.template(migrations)
        async with fresh_database(self.server, prefix, template=template) as url:
            yield url

    async def drop(self) -> None:
        admin = await asyncpg.connect(self.server)
        try:
            for name in self.templates.values():
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@pytest.fixture(scope="session")
def migrated_templates(postgres_server: str) -> Iterator[MigratedTemplates]:
    templates = MigratedTemplates(postgres_server)
    yield templates
    asyncio.run(templates.drop())


@pytest_asyncio.fixture
async def pg_url(postgres_server: str) -> AsyncIterator[str]:
    """A fresh, empty database for one test."""
    async with fresh_database(postgres_server) as url:
        yield url


@pytest_asyncio.fixture
async def pg_engine(pg_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(pg_url)
    yield engine
    await engine.dispose()


@pytest_asyncio.fixture
async def sqlite_engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(f"sqlite:///{tmp_path / 'events.db'}")
    yield engine
    await engine.dispose()


@pytest.fixture(params=["postgresql", "sqlite"])
def any_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Storage tests run on both backends."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'events.db'}"
    return str(request.getfixturevalue("pg_url"))


@pytest_asyncio.fixture
async def any_engine(any_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(any_url)
    yield engine
    await engine.dispose()


@pytest.fixture
def broker() -> Iterator[EmbeddedBroker]:
    """A broker per test: consumer groups of one test never wait on another's members."""
    with EmbeddedBroker() as running:
        yield running


@pytest.fixture
def kafka(broker: EmbeddedBroker) -> KafkaSettings:
    return KafkaSettings(
        bootstrap_servers=broker.bootstrap_servers,
        partitions=3,
        session_timeout_ms=TEST_SESSION_TIMEOUT_MS,
        heartbeat_interval_ms=TEST_HEARTBEAT_INTERVAL_MS,
        fetch_max_wait_ms=TEST_FETCH_MAX_WAIT_MS,
        idle_fetch_max_wait_ms=TEST_FETCH_MAX_WAIT_MS,
    )


@pytest.fixture
def unique() -> str:
    """A suffix that keeps topics and groups of one test apart from the others'."""
    return uuid.uuid4().hex[:8]
