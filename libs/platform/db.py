"""Database engines: PostgreSQL through asyncpg, SQLite through aiosqlite.

A service only knows its ``DATABASE_URL``; this module turns it into an async
engine that behaves the same on both (UTC timestamps, writers that wait for
each other instead of failing).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import BigInteger, DateTime, Integer, Table, event
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.types import JSON, TypeDecorator

from libs.platform.tracing import trace_engine

# SQLite only auto-increments an INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")
JsonDocument = JSON().with_variant(JSONB(), "postgresql")


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite forgets the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; the platform stores UTC-aware times only")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def async_url(url: str) -> str:
    """Accept the usual spellings and pick the async driver."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg", "postgresql+psycopg2"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    elif parsed.drivername == "sqlite":
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    return parsed.render_as_string(hide_password=False)


# Connections one process keeps to its database. The whole platform shares one
# PostgreSQL server (default max_connections 100): six services, some with two workers,
# at 20 each asked for more than it has, and a load that filled the pools was refused
# with "too many clients". 10 per service, shared out between its workers, stays
# under 80 for the platform (docs/decisions/0022); DATABASE_POOL_SIZE overrides it.
SERVICE_POOL_SIZE = 10


def default_pool_size(environ: Mapping[str, str] = os.environ) -> int:
    """``DATABASE_POOL_SIZE`` if set, else the service's share per worker process."""
    given = environ.get("DATABASE_POOL_SIZE", "").strip()
    if given:
        return max(1, int(given))
    workers = int(environ.get("WORKERS", "1") or 1)
    return max(4, SERVICE_POOL_SIZE // max(1, workers))


def create_engine(
    url: str, *, pool_size: int | None = None, max_overflow: int | None = None, echo: bool = False
) -> AsyncEngine:
    url = async_url(url)
    if pool_size is None:
        pool_size = default_pool_size()
    if url.startswith("sqlite"):
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, echo=echo, connect_args={"timeout": 30})
        _serialise_sqlite_writers(engine)
        return trace_engine(engine)
    # No pre-ping: it costs a round trip per checkout on every request; recycling
    # connections and retrying at the edges covers a restarted server.
    # No overflow by default: an overflow connection is closed as soon as it is
    # returned, so a load above the pool size opened and closed a PostgreSQL backend
    # per request (a process fork and a login each: most of the database's CPU in
    # the registration benchmark). Past the pool, requests wait for a connection.
    engine = create_async_engine(
        url,
        echo=echo,
        pool_size=pool_size,
        max_overflow=0 if max_overflow is None else max_overflow,
        pool_recycle=1800,
    )
    # Many rows for one INSERT go as multi-row VALUES statements (1,000 rows each), as
    # SQLAlchemy does for psycopg2, instead of one execution per row (an import of
    # 20,000 customers executed 140,000 single-row inserts). Not for ON CONFLICT
    # without RETURNING, which SQLAlchemy keeps per row.
    engine.dialect.use_insertmanyvalues_wo_returning = True
    return trace_engine(engine)


def is_postgres(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "postgresql"


def upsert_for(bind: AsyncConnection | AsyncEngine) -> Any:
    """The dialect's ``insert``, the one with ``on_conflict_do_nothing``/``_do_update``
    (an idempotent write: PostgreSQL and SQLite spell ON CONFLICT alike)."""
    return pg_insert if bind.dialect.name == "postgresql" else sqlite_insert


def upsert_into(bind: AsyncConnection | AsyncEngine, table: Table) -> Any:
    """``upsert_for(bind)(table)``: an insert into ``table`` that knows ON CONFLICT."""
    return upsert_for(bind)(table)


CHECKPOINT_ATTEMPTS = 20
CHECKPOINT_RETRY_SECONDS = 0.05


async def drop_overwritten_pages(engine: AsyncEngine) -> bool:
    """After an erasure: leave no copy of what was overwritten in the database files.

    SQLite in WAL mode appends every changed page to the ``-wal`` file, so the
    pages as they were before the erasure stay readable there until a checkpoint
    has copied the current pages back and the file is truncated (with
    ``secure_delete`` the database file itself keeps no freed content). False when
    a reader still needed the old pages (the next erasure or SQLite's own
    checkpoints finish the job). PostgreSQL: nothing to do here; see
    docs/decisions/0012 for what VACUUM does and does not guarantee.
    """
    if engine.dialect.name != "sqlite":
        return True
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        # The driver's own connection: outside any transaction, as a checkpoint must be.
        driver: Any = raw.driver_connection
        # A reader's snapshot (a view read, a projection's look at its generation) holds
        # the old pages for milliseconds: try a few times before leaving it to the next.
        for attempt in range(CHECKPOINT_ATTEMPTS):
            if attempt:
                await asyncio.sleep(CHECKPOINT_RETRY_SECONDS)
            try:
                async with driver.execute("PRAGMA wal_checkpoint(TRUNCATE)") as cursor:
                    blocked, _, _ = await cursor.fetchone()
            except sqlite3.Error:
                # The erasure itself is committed; a checkpoint that could not run is
                # what a reader in the way looks like too, not a reason to fail it.
                blocked = 1
            if not blocked:
                return True
        return False


SNAPSHOT_READS = "crm_snapshot_reads"


def snapshot_reads(engine: AsyncEngine) -> AsyncEngine:
    """``engine`` for transactions that only read. On SQLite every other transaction
    begins IMMEDIATE, taking the write lock, so a read would wait (up to the 30 s busy
    timeout) behind a projector's batch; these begin deferred and read a snapshot. A
    write in one fails (SQLITE_BUSY) instead of queueing. PostgreSQL: no change."""
    return engine.execution_options(**{SNAPSHOT_READS: True})


def _serialise_sqlite_writers(engine: AsyncEngine) -> None:
    # SQLite fails a deferred transaction that upgrades to a writer while another
    # writes (SQLITE_BUSY, no retry). BEGIN IMMEDIATE makes writers queue instead.
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        # Deleted and overwritten content is zeroed, not left in free space where a
        # copy of the file would still show an erased customer's name.
        cursor.execute("PRAGMA secure_delete=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        # A probe that only reads asks for AUTOCOMMIT: it must never hold the write lock
        # (a probe cancelled while waiting for it kept it, and every writer then waited).
        options = conn.get_execution_options()
        if options.get("isolation_level") == "AUTOCOMMIT":
            return
        if options.get(SNAPSHOT_READS):
            # A reader's snapshot (WAL): it never waits for a writer, nor a writer for it.
            conn.exec_driver_sql("BEGIN")
            return
        conn.exec_driver_sql("BEGIN IMMEDIATE")
