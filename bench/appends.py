"""Benchmarks 1 and 2: appending events, ours against raw asyncpg and the eventsourcing peer.

Every system writes the same rows: one event of 300 bytes of JSON data, a new
event id, and (for ours and raw) the outbox row in the same transaction.

* ``ours``     ``EventStore.append`` (SQLAlchemy on asyncpg, the library's default engine).
* ``raw``      asyncpg, a pool of 32, one statement per append: a CTE that inserts the
               event and its outbox row (plus, on an existing stream, the same
               "no version gap" check ours makes), into the same tables.
* ``peer``     eventsourcing 9.5.6 ``PostgresApplicationRecorder`` (psycopg 3, one
               ``insert_events`` per append from 32 threads): events plus a totally
               ordered notification log, the feature that matches our outbox. It takes
               an EXCLUSIVE table lock per insert, so its writers are serialised.
* ``peer-agg`` eventsourcing ``PostgresAggregateRecorder``: events only, no log, no lock
               (less than ours does, listed as a ceiling for the peer).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from bench.common import (
    EVENT_TYPE,
    T0,
    TENANT,
    Measurement,
    drive_async,
    drive_threads,
    event_data,
    fresh_database,
    new_event,
)
from libs.events.store import EventStore
from libs.platform.db import create_engine

SYSTEMS = ("ours", "raw", "peer", "peer-agg")
CUSTOMERS = 1000

RAW_APPEND = """
WITH e AS (
    INSERT INTO events (event_id, tenant_id, stream_id, version, type, partition_key, data,
                        occurred_at, recorded_at)
    SELECT $1::varchar, $2::varchar, $3::varchar, $4::int, $5::varchar, $6::varchar,
           $7::jsonb, $8::timestamptz, $9::timestamptz
    WHERE $4::int = 1 OR (SELECT coalesce(max(version), 0) FROM events
                          WHERE tenant_id = $2::varchar AND stream_id = $3::varchar) = $4::int - 1
    RETURNING position, recorded_at
)
INSERT INTO outbox (position, enqueued_at) SELECT position, recorded_at FROM e
"""

RAW_APPEND_MANY = """
WITH e AS (
    INSERT INTO events (event_id, tenant_id, stream_id, version, type, partition_key, data,
                        occurred_at, recorded_at)
    SELECT u.event_id, $2::varchar, $3::varchar, u.version, $5::varchar, u.partition_key,
           u.data::jsonb, $8::timestamptz, $9::timestamptz
    FROM unnest($1::text[], $4::int[], $6::text[], $7::text[])
         WITH ORDINALITY AS u(event_id, version, partition_key, data, ord)
    ORDER BY u.ord
    RETURNING position, recorded_at
)
INSERT INTO outbox (position, enqueued_at) SELECT position, recorded_at FROM e
"""


class Conflict(Exception):
    pass


async def run_system(
    system: str, *, mode: str, writers: int, batch: int, warmup: float, duration: float
) -> Measurement:
    """One measurement of one system in a fresh database.

    ``mode``: ``new`` (a new stream per transaction) or ``existing`` (every writer
    keeps appending to a stream of its own)."""
    async with fresh_database(f"append_{system.replace('-', '_')}") as url:
        if system == "ours":
            return await _ours(url, mode=mode, writers=writers, batch=batch, warmup=warmup,
                               duration=duration)
        if system == "raw":
            return await _raw(url, mode=mode, writers=writers, batch=batch,
                              warmup=warmup, duration=duration)
        return await asyncio.to_thread(
            _peer, url, application=(system == "peer"), mode=mode, writers=writers,
            batch=batch, warmup=warmup, duration=duration)


# --------------------------------------------------------------------------- ours


async def _ours(url: str, *, mode: str, writers: int, batch: int, warmup: float,
                duration: float) -> Measurement:
    # A pool as large as the writers: with fewer, fast writers keep closing
    # overflow connections and opening new ones.
    engine = create_engine(url, pool_size=32, max_overflow=8)
    store = EventStore(engine)
    await store.create_tables()
    counter = itertools.count()

    def writer(w: int) -> Callable[[], Awaitable[int]]:
        stream = f"w-{w}-{uuid.uuid4().hex[:8]}"
        version = 0

        async def op() -> int:
            nonlocal version
            i = next(counter)
            events = [new_event((i * batch + k) % CUSTOMERS) for k in range(batch)]
            if mode == "new":
                await store.append(TENANT, f"s-{i}", 0, events)
            else:
                version = await store.append(TENANT, stream, version, events)
            return batch

        return op

    try:
        return await drive_async(writers, writer, warmup=warmup, duration=duration)
    finally:
        await engine.dispose()


# --------------------------------------------------------------------------- raw asyncpg


async def _raw(url: str, *, mode: str, writers: int, batch: int, warmup: float,
               duration: float) -> Measurement:
    engine = create_engine(url)  # only to create the very same tables
    await EventStore(engine).create_tables()
    await engine.dispose()
    pool = await asyncpg.create_pool(url, min_size=writers, max_size=writers)
    counter = itertools.count()

    def writer(w: int) -> Callable[[], Awaitable[int]]:
        stream = f"w-{w}-{uuid.uuid4().hex[:8]}"
        version = 0

        async def op() -> int:
            nonlocal version
            i = next(counter)
            now = datetime.now(UTC)
            stream_id, first = (f"s-{i}", 1) if mode == "new" else (stream, version + 1)
            if batch == 1:
                data = event_data(i % CUSTOMERS)
                status = await pool.execute(
                    RAW_APPEND, str(uuid.uuid4()), TENANT, stream_id, first, EVENT_TYPE,
                    data["customer_id"], json.dumps(data), T0, now)
            else:
                datas = [event_data((i * batch + k) % CUSTOMERS) for k in range(batch)]
                status = await pool.execute(
                    RAW_APPEND_MANY, [str(uuid.uuid4()) for _ in datas], TENANT, stream_id,
                    list(range(first, first + batch)), EVENT_TYPE,
                    [d["customer_id"] for d in datas], [json.dumps(d) for d in datas], T0, now)
            if status != f"INSERT 0 {batch}":
                raise Conflict(status)
            version = first + batch - 1
            return batch

        return op

    try:
        return await drive_async(writers, writer, warmup=warmup, duration=duration)
    finally:
        await pool.close()


# --------------------------------------------------------------------------- eventsourcing


def _peer(url: str, *, application: bool, mode: str, writers: int, batch: int,
          warmup: float, duration: float) -> Measurement:
    from eventsourcing.persistence import StoredEvent
    from eventsourcing.postgres import (
        PostgresAggregateRecorder,
        PostgresApplicationRecorder,
        PostgresDatastore,
    )

    u = make_url(url)
    datastore = PostgresDatastore(
        dbname=u.database or "", host=u.host or "127.0.0.1", port=u.port or 5432,
        user=u.username or "postgres", password=u.password or "", pool_size=writers,
    )
    recorder_class: Any = PostgresApplicationRecorder if application else PostgresAggregateRecorder
    recorder = recorder_class(datastore)
    recorder.create_table()
    counter = itertools.count()
    topic = "bench.common:VisitLogged"

    def writer(w: int) -> Callable[[], int]:
        stream = uuid.uuid4()
        version = 0

        def op() -> int:
            nonlocal version
            i = next(counter)
            originator, first = (uuid.uuid4(), 1) if mode == "new" else (stream, version + 1)
            recorder.insert_events([
                StoredEvent(originator, first + k, topic,
                            json.dumps(event_data((i * batch + k) % CUSTOMERS)).encode())
                for k in range(batch)
            ])
            version = first + batch - 1
            return batch

        return op

    try:
        return drive_threads(writers, writer, warmup=warmup, duration=duration)
    finally:
        datastore.close()


def summary(m: Measurement) -> dict[str, Any]:
    return {"events": m.events, "seconds": round(m.seconds, 3), "rate": round(m.rate, 1),
            "p50_ms": _r(m.latency_ms(0.5)), "p99_ms": _r(m.latency_ms(0.99))}


def _r(v: float | None) -> float | None:
    return None if v is None else round(v, 2)
