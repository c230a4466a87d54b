"""Shared helpers: fresh databases, the benchmark event, timed concurrent drivers, stats."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import statistics
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
from sqlalchemy import Column, Float, Integer, String, Table, bindparam, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection

from libs.events.catalog import DomainEvent, EventCatalog
from libs.events.consumer import ReceivedEvent
from libs.events.envelope import EventEnvelope
from libs.events.kafka import KafkaSettings, new_producer
from libs.events.projection import Projection
from libs.events.store import NewEvent
from libs.platform.broker import EmbeddedBroker

ADMIN_URL = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
# The platforms a benchmark starts run on PostgreSQL, which needs a configured token key:
# one of the run's own, shared with them through the environment (decision 0099).
os.environ.setdefault("JWT_SECRET", secrets.token_urlsafe(48))
TENANT = "bench"
T0 = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)

# --------------------------------------------------------------------------- the event


class VisitLogged(DomainEvent, type_name="crm.bench.visit_logged.v1"):
    customer_id: str
    minutes: int
    note: str = ""
    sent_at: float = 0.0


catalog = EventCatalog([VisitLogged])
EVENT_TYPE = VisitLogged.type_name
PAYLOAD_BYTES = 300


def _note_length() -> int:
    probe = {"customer_id": "c-000000", "minutes": 7, "note": "", "sent_at": 1767605400.123456}
    return PAYLOAD_BYTES - len(json.dumps(probe, separators=(",", ":")))


NOTE = "n" * _note_length()


def event_data(customer: int, *, minutes: int = 7, sent_at: float = 1767605400.123456
               ) -> dict[str, Any]:
    """The JSON data of one benchmark event: 300 bytes when serialised compactly."""
    return {"customer_id": f"c-{customer:06d}", "minutes": minutes, "note": NOTE,
            "sent_at": sent_at}


def new_event(customer: int, **kw: Any) -> NewEvent:
    data = event_data(customer, **kw)
    return NewEvent(type=EVENT_TYPE, data=data, partition_key=data["customer_id"],
                    occurred_at=T0)


def envelope(position: int, customer: int, version: int = 1) -> EventEnvelope:
    """An envelope exactly as the relay publishes it."""
    data = event_data(customer)
    return EventEnvelope(
        id=str(uuid.uuid4()), source="/crm/bench", type=EVENT_TYPE,
        subject=f"s-{position}", time=T0, tenantid=TENANT, partitionkey=data["customer_id"],
        sequence=version, data=data,
    )


async def prefill(
    kafka: KafkaSettings, topic: str, envelopes: Iterable[EventEnvelope], in_flight: int = 5000
) -> int:
    """Publishes ``envelopes`` to ``topic`` as the relay would (binary CloudEvents), up to
    ``in_flight`` unacknowledged at a time; how many were published."""
    producer = new_producer(kafka, client_id="bench-prefill")
    await producer.start()
    count = 0
    try:
        pending = []
        for published in envelopes:
            r = published.to_kafka()
            pending.append(await producer.send(topic, key=r.key, value=r.value, headers=r.headers))
            count += 1
            if len(pending) == in_flight:
                await asyncio.gather(*pending)
                pending = []
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return count


# --------------------------------------------------------------------------- the read model


class BenchTotals(Projection):
    """Minutes and visits per customer. ``apply`` updates one event at a time (UPDATE,
    then INSERT when the customer is new); the runtime calls ``apply_many``, which folds
    the whole batch into one upsert, as a projection written for throughput does."""

    name = "bench_totals"

    def __init__(self, generation: int = 1, topics: tuple[str, ...] = ()) -> None:
        super().__init__(generation)
        self.topics = topics
        t = self.totals = Table(
            self.table_name("totals"), self.metadata,
            Column("customer_id", String(64), primary_key=True),
            Column("minutes", Integer, nullable=False),
            Column("visits", Integer, nullable=False),
        )
        self._update = (
            t.update().where(t.c.customer_id == bindparam("cid"))
            .values(minutes=t.c.minutes + bindparam("m", type_=Integer), visits=t.c.visits + 1)
        )
        self._insert = t.insert().values(customer_id=bindparam("cid"), minutes=bindparam("m"),
                                         visits=1)

    async def apply(self, conn: AsyncConnection, event: ReceivedEvent) -> None:
        e = event.event
        assert isinstance(e, VisitLogged)
        params = {"cid": e.customer_id, "m": e.minutes}
        changed = await conn.execute(self._update, params)
        if changed.rowcount == 0:
            await conn.execute(self._insert, params)


    async def apply_many(self, conn: AsyncConnection, events: Sequence[ReceivedEvent]) -> None:
        # How a projection is written for throughput: fold the batch, one upsert.
        sums: dict[str, list[int]] = {}
        for event in events:
            e = event.event
            assert isinstance(e, VisitLogged)
            s = sums.setdefault(e.customer_id, [0, 0])
            s[0] += e.minutes
            s[1] += 1
        if not sums:
            return
        t = self.totals.name
        await conn.execute(
            text(f"""
                INSERT INTO {t} (customer_id, minutes, visits)
                SELECT * FROM unnest(CAST(:ids AS varchar[]), CAST(:m AS int[]),
                                     CAST(:v AS int[]))
                ON CONFLICT (customer_id) DO UPDATE
                SET minutes = {t}.minutes + excluded.minutes,
                    visits = {t}.visits + excluded.visits
            """),
            {"ids": list(sums), "m": [s[0] for s in sums.values()],
             "v": [s[1] for s in sums.values()]},
        )


class LagProbe(BenchTotals):
    """BenchTotals plus one row per event: when it was sent and when it was applied."""

    name = "bench_lag"

    def __init__(self, generation: int = 1, topics: tuple[str, ...] = ()) -> None:
        super().__init__(generation, topics)
        self.seen = Table(
            self.table_name("seen"), self.metadata,
            Column("event_id", String(36), primary_key=True),
            Column("sent_at", Float, nullable=False),
            Column("applied_at", Float, nullable=False),
        )

    async def apply(self, conn: AsyncConnection, event: ReceivedEvent) -> None:
        await super().apply(conn, event)
        e = event.event
        assert isinstance(e, VisitLogged)
        await conn.execute(self.seen.insert().values(
            event_id=event.envelope.id, sent_at=e.sent_at, applied_at=time.time()))

    async def apply_many(self, conn: AsyncConnection, events: Sequence[ReceivedEvent]) -> None:
        await BenchTotals.apply_many(self, conn, events)
        now = time.time()
        rows = [(e.envelope.id, e.event.sent_at) for e in events
                if isinstance(e.event, VisitLogged)]
        await conn.execute(
            text(f"INSERT INTO {self.seen.name} (event_id, sent_at, applied_at) "
                 "SELECT i, s, :now FROM unnest(CAST(:ids AS varchar[]), "
                 "CAST(:sent AS float8[])) AS u(i, s)"),
            {"ids": [r[0] for r in rows], "sent": [r[1] for r in rows], "now": now},
        )


# --------------------------------------------------------------------------- infrastructure


def db_url(admin: str, name: str) -> str:
    return make_url(admin).set(database=name).render_as_string(hide_password=False)


@asynccontextmanager
async def fresh_database(label: str) -> AsyncIterator[str]:
    """A new, empty database for one run, dropped afterwards."""
    name = f"bench_{label}_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(ADMIN_URL)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield db_url(ADMIN_URL, name)
    finally:
        admin = await asyncpg.connect(ADMIN_URL)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@contextmanager
def broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker() as running:
        yield running


async def server_info() -> dict[str, str]:
    conn = await asyncpg.connect(ADMIN_URL)
    try:
        info = {"version": await conn.fetchval("SHOW server_version")}
        for setting in ("max_connections", "shared_buffers", "synchronous_commit", "fsync",
                        "wal_sync_method"):
            info[setting] = await conn.fetchval(f"SHOW {setting}")
        return info
    finally:
        await conn.close()


# --------------------------------------------------------------------------- drivers


@dataclass
class Measurement:
    events: int
    seconds: float
    latencies: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0

    def latency_ms(self, q: float) -> float | None:
        return percentile(self.latencies, q) * 1000 if self.latencies else None


async def drive_async(
    writers: int,
    make_writer: Callable[[int], Callable[[], Awaitable[int]]],
    *, warmup: float, duration: float,
) -> Measurement:
    """Run ``writers`` tasks, each calling its operation in a loop; count the events
    the operations report between the end of the warm-up and the end of the run."""
    phase = 0  # 0 warm-up, 1 measuring, 2 stop
    counted = 0
    latencies: list[float] = []

    async def loop(op: Callable[[], Awaitable[int]]) -> None:
        nonlocal counted
        while phase < 2:
            started = time.perf_counter()
            n = await op()
            if phase == 1:
                counted += n
                latencies.append(time.perf_counter() - started)

    ops = [make_writer(i) for i in range(writers)]
    tasks = [asyncio.create_task(loop(op)) for op in ops]
    try:
        await _sleep_watching(tasks, warmup)
        phase, t0 = 1, time.perf_counter()
        await _sleep_watching(tasks, duration)
        phase, elapsed = 2, time.perf_counter() - t0
        measured = counted
        await asyncio.gather(*tasks)
    finally:
        for t in tasks:
            t.cancel()
    return Measurement(measured, elapsed, latencies)


async def _sleep_watching(tasks: Sequence[asyncio.Task[None]], seconds: float) -> None:
    done, _ = await asyncio.wait(tasks, timeout=seconds, return_when=asyncio.FIRST_EXCEPTION)
    for t in done:
        t.result()  # a writer that failed fails the run


def drive_threads(
    writers: int, make_writer: Callable[[int], Callable[[], int]],
    *, warmup: float, duration: float,
) -> Measurement:
    """The same as :func:`drive_async` with OS threads, for synchronous clients."""
    state = {"phase": 0}
    counted = [0] * writers
    latencies: list[list[float]] = [[] for _ in range(writers)]
    errors: list[BaseException] = []
    ops = [make_writer(i) for i in range(writers)]

    def loop(i: int) -> None:
        op = ops[i]
        try:
            while state["phase"] < 2:
                started = time.perf_counter()
                n = op()
                if state["phase"] == 1:
                    counted[i] += n
                    latencies[i].append(time.perf_counter() - started)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=loop, args=(i,), daemon=True) for i in range(writers)]
    for t in threads:
        t.start()
    time.sleep(warmup)
    state["phase"], t0 = 1, time.perf_counter()
    time.sleep(duration)
    snapshot = list(counted)
    state["phase"], elapsed = 2, time.perf_counter() - t0
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return Measurement(sum(snapshot), elapsed, [x for lat in latencies for x in lat])


# --------------------------------------------------------------------------- statistics


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def fmt(value: Any, digits: int = 0) -> str:
    """A number for the tables (thousands separated), "-" for none."""
    if value is None:
        return "-"
    if isinstance(value, float | int):
        return f"{value:,.{digits}f}"
    return str(value)
