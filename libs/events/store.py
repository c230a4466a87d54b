"""The event store: the source of truth of every service.

Events are appended to a stream (one aggregate) with the version the writer
last saw. A unique (tenant, stream, version) constraint is the whole of the
optimistic concurrency: two writers at the same version cannot both insert, so
one gets :class:`ConcurrencyConflict` and writes nothing. The outbox row is
written in the same transaction, so an event is published if and only if it
was stored.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from asyncpg.exceptions import UniqueViolationError
from sqlalchemy import (
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    func,
    insert,
    select,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from libs.events.catalog import DomainEvent
from libs.events.envelope import EventEnvelope
from libs.events.vault import PersonalDataPolicy, PersonalDataVault, keys_table, open_events
from libs.platform.db import BigId, JsonDocument, UtcDateTime, is_postgres

metadata = MetaData()

events = Table(
    "events",
    metadata,
    Column("position", BigId, primary_key=True, autoincrement=True),
    Column("event_id", String(36), nullable=False, unique=True),
    Column("tenant_id", String(64), nullable=False),
    Column("stream_id", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("type", String(200), nullable=False),
    Column("partition_key", String(64), nullable=False),
    Column("data", JsonDocument, nullable=False),
    Column("correlation_id", String(64)),
    Column("causation_id", String(64)),
    Column("occurred_at", UtcDateTime, nullable=False),
    Column("recorded_at", UtcDateTime, nullable=False),
    UniqueConstraint("tenant_id", "stream_id", "version", name="uq_events_stream_version"),
)

outbox = Table(
    "outbox",
    metadata,
    Column("position", BigId, ForeignKey("events.position"), primary_key=True),
    Column("enqueued_at", UtcDateTime, nullable=False),
)

Index("ix_events_partition_key", events.c.tenant_id, events.c.partition_key)

personal_data_keys = keys_table(metadata)


class ConcurrencyConflict(Exception):
    """Someone else appended to the stream since the writer read it."""

    def __init__(self, tenant_id: str, stream_id: str, expected_version: int) -> None:
        super().__init__(
            f"stream {stream_id} of tenant {tenant_id} is no longer at version {expected_version}"
        )
        self.tenant_id = tenant_id
        self.stream_id = stream_id
        self.expected_version = expected_version


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event about to be appended."""

    type: str
    data: dict[str, Any]
    partition_key: str
    occurred_at: datetime
    event_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    correlation_id: str | None = None
    causation_id: str | None = None

    @classmethod
    def from_domain(
        cls,
        event: DomainEvent,
        *,
        partition_key: str,
        occurred_at: datetime,
        correlation_id: str | None = None,
        causation_id: str | None = None,
    ) -> NewEvent:
        return cls(
            type=type(event).type_name,
            data=event.model_dump(mode="json"),
            partition_key=partition_key,
            occurred_at=occurred_at,
            correlation_id=correlation_id,
            causation_id=causation_id,
        )


@dataclass(frozen=True, slots=True)
class StreamAppend:
    """New events for one stream, after the version the writer read (0: a new stream)."""

    stream_id: str
    expected_version: int
    events: Sequence[NewEvent]


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    position: int
    event_id: str
    tenant_id: str
    stream_id: str
    version: int
    type: str
    partition_key: str
    data: dict[str, Any]
    occurred_at: datetime
    recorded_at: datetime
    correlation_id: str | None = None
    causation_id: str | None = None

    def to_envelope(self, source: str, dataschema: str | None = None) -> EventEnvelope:
        return EventEnvelope(
            id=self.event_id,
            source=source,
            type=self.type,
            subject=self.stream_id,
            time=self.occurred_at,
            tenantid=self.tenant_id,
            partitionkey=self.partition_key,
            sequence=self.version,
            data=self.data,
            correlationid=self.correlation_id,
            causationid=self.causation_id,
            dataschema=dataschema,
        )


EVENT_COLUMNS = [
    events.c.position,
    events.c.event_id,
    events.c.tenant_id,
    events.c.stream_id,
    events.c.version,
    events.c.type,
    events.c.partition_key,
    events.c.data,
    events.c.occurred_at,
    events.c.recorded_at,
    events.c.correlation_id,
    events.c.causation_id,
]


def recorded_event(row: Any) -> RecordedEvent:
    return RecordedEvent(*row)


_APPEND_IN_ONE_STATEMENT = """
WITH appended AS (
    INSERT INTO events (event_id, tenant_id, stream_id, version, type, partition_key, data,
                        correlation_id, causation_id, occurred_at, recorded_at)
    SELECT u.event_id, $2::varchar, $3::varchar, $4::int + u.ord::int, u.type,
           u.partition_key, u.data::jsonb, u.correlation_id, u.causation_id, u.occurred_at,
           $5::timestamptz
    FROM unnest($1::varchar[], $6::varchar[], $7::varchar[], $8::text[], $9::varchar[],
                $10::varchar[], $11::timestamptz[])
         WITH ORDINALITY AS u(event_id, type, partition_key, data, correlation_id,
                              causation_id, occurred_at, ord)
    WHERE $4::int = 0 OR (SELECT max(version) FROM events
                          WHERE tenant_id = $2::varchar AND stream_id = $3::varchar) = $4::int
    ORDER BY u.ord
    RETURNING position
)
INSERT INTO outbox (position, enqueued_at) SELECT position, $5::timestamptz FROM appended
"""


# PostgreSQL: a new stream's events, their outbox rows and the personal data key of
# their subject, as one server-side routine. A service's own routine calls it, so a
# command that also checks and writes the service's tables is one round trip.
# A stream or key that exists already is a unique violation: nothing is written.
START_STREAM_ROUTINE = """
CREATE OR REPLACE FUNCTION events_start_stream(
    p_tenant varchar, p_stream varchar, p_subject varchar, p_key bytea, p_now timestamptz,
    p_event_ids varchar[], p_types varchar[], p_partition_keys varchar[], p_data text[],
    p_correlation_ids varchar[], p_causation_ids varchar[], p_occurred_at timestamptz[]
) RETURNS integer LANGUAGE plpgsql AS $$
BEGIN
    IF p_key IS NOT NULL THEN
        INSERT INTO personal_data_keys (tenant_id, subject_id, key, created_at)
        VALUES (p_tenant, p_subject, p_key, p_now);
    END IF;
    WITH appended AS (
        INSERT INTO events (event_id, tenant_id, stream_id, version, type, partition_key,
                            data, correlation_id, causation_id, occurred_at, recorded_at)
        SELECT u.event_id, p_tenant, p_stream, u.ord::int, u.type, u.partition_key,
               u.data::jsonb, u.correlation_id, u.causation_id, u.occurred_at, p_now
        FROM unnest(p_event_ids, p_types, p_partition_keys, p_data, p_correlation_ids,
                    p_causation_ids, p_occurred_at)
             WITH ORDINALITY AS u(event_id, type, partition_key, data, correlation_id,
                                  causation_id, occurred_at, ord)
        ORDER BY u.ord
        RETURNING position
    )
    INSERT INTO outbox (position, enqueued_at) SELECT position, p_now FROM appended;
    RETURN cardinality(p_event_ids);
END $$
"""
# Its parameters by name: callers pass a mapping and call it in named notation
# (``p_tenant => $1``), so no caller depends on the order of the signature.
START_STREAM_PARAMETERS = (
    "p_tenant", "p_stream", "p_subject", "p_key", "p_now", "p_event_ids", "p_types",
    "p_partition_keys", "p_data", "p_correlation_ids", "p_causation_ids", "p_occurred_at",
)


def _event_columns(
    new_events: Sequence[NewEvent], data: Sequence[dict[str, Any]]
) -> list[list[Any]]:
    """The per-event arrays both PostgreSQL routines unnest, in their order: type,
    partition key, data (JSON text, as stored), correlation, causation, occurred at."""
    return [
        [e.type for e in new_events],
        [e.partition_key for e in new_events],
        [json.dumps(d, separators=(",", ":"), ensure_ascii=False) for d in data],
        [e.correlation_id for e in new_events],
        [e.causation_id for e in new_events],
        [e.occurred_at for e in new_events],
    ]


class EventStore:
    def __init__(
        self, engine: AsyncEngine, *, personal_data: PersonalDataPolicy | None = None
    ) -> None:
        self.engine = engine
        self.vault = PersonalDataVault(personal_data_keys, personal_data) if personal_data else None
        self._single_statement = is_postgres(engine)

    async def create_tables(self) -> None:
        async with self.engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
            if self._single_statement:
                await conn.exec_driver_sql(START_STREAM_ROUTINE)

    def start_stream_arguments(
        self, tenant_id: str, stream_id: str, new_events: Sequence[NewEvent]
    ) -> dict[str, Any]:
        """The arguments of ``events_start_stream`` (PostgreSQL) for a brand-new stream
        whose events all concern one new subject (their partition key): personal
        fields sealed with a key made here, which the routine stores with them."""
        subjects = {e.partition_key for e in new_events}
        if len(subjects) != 1:
            raise ValueError("events_start_stream takes the events of one subject")
        (subject,) = subjects
        key, data = None, [e.data for e in new_events]
        if self.vault is not None:
            key, data = self.vault.seal_new_subject([(e.type, e.data) for e in new_events])
        values = [
            tenant_id,
            stream_id,
            subject,
            key,
            datetime.now(UTC),
            [e.event_id for e in new_events],
            *_event_columns(new_events, data),
        ]
        return dict(zip(START_STREAM_PARAMETERS, values, strict=True))

    async def append(
        self,
        tenant_id: str,
        stream_id: str,
        expected_version: int,
        new_events: Sequence[NewEvent],
        *,
        conn: AsyncConnection | None = None,
    ) -> int:
        """Append ``new_events`` after ``expected_version``; return the new version.

        With ``conn`` the append joins the caller's transaction (to change a
        service's own tables atomically with it); otherwise it runs in its own.
        """
        if not new_events:
            return expected_version
        if conn is not None:
            return await self._append(conn, tenant_id, stream_id, expected_version, new_events)
        if self._single_statement and not any(self._is_personal(e.type) for e in new_events):
            return await self._append_in_one_statement(
                tenant_id, stream_id, expected_version, new_events
            )
        async with self.engine.begin() as own:
            return await self._append(own, tenant_id, stream_id, expected_version, new_events)

    async def _append(
        self,
        conn: AsyncConnection,
        tenant_id: str,
        stream_id: str,
        expected_version: int,
        new_events: Sequence[NewEvent],
    ) -> int:
        appended = StreamAppend(stream_id, expected_version, new_events)
        return (await self.append_many(tenant_id, [appended], conn=conn))[0]

    async def append_many(
        self, tenant_id: str, appends: Sequence[StreamAppend], *, conn: AsyncConnection
    ) -> list[int]:
        """Append to many streams in the caller's transaction with a few statements.

        For bulk writes (imports): the same checks as ``append``, but one version
        query, one key lookup, one insert of events and one of outbox rows for the
        whole batch instead of several round trips per stream. All or nothing.
        Returns the new version of each stream, in the order given.
        """
        ids = [a.stream_id for a in appends]
        if len(set(ids)) != len(ids):
            raise ValueError("append_many takes each stream once")
        # The unique constraint stops two writers at one version; this stops a writer
        # that claims a version its stream never reached (a gap).
        continuing = [a for a in appends if a.expected_version > 0 and a.events]
        if continuing:
            current: dict[str, int] = {}
            for start in range(0, len(continuing), 1000):
                chunk = [a.stream_id for a in continuing[start : start + 1000]]
                found = await conn.execute(
                    select(events.c.stream_id, func.max(events.c.version))
                    .where(events.c.tenant_id == tenant_id, events.c.stream_id.in_(chunk))
                    .group_by(events.c.stream_id)
                )
                current.update({stream: int(version) for stream, version in found})
            for a in continuing:
                if current.get(a.stream_id, 0) != a.expected_version:
                    raise ConcurrencyConflict(tenant_id, a.stream_id, a.expected_version)
        flat = [(a, i, e) for a in appends for i, e in enumerate(a.events, start=1)]
        if not flat:
            return [a.expected_version for a in appends]
        if self.vault is None:
            data = [e.data for _, _, e in flat]
        else:
            data = await self.vault.seal_many(
                conn, tenant_id, [(e.partition_key, e.type, e.data) for _, _, e in flat]
            )
        now = datetime.now(UTC)
        rows = [
            {
                "event_id": e.event_id,
                "tenant_id": tenant_id,
                "stream_id": a.stream_id,
                "version": a.expected_version + i,
                "type": e.type,
                "partition_key": e.partition_key,
                "data": sealed,
                "correlation_id": e.correlation_id,
                "causation_id": e.causation_id,
                "occurred_at": e.occurred_at,
                "recorded_at": now,
            }
            for (a, i, e), sealed in zip(flat, data, strict=True)
        ]
        try:
            result = await conn.execute(
                insert(events).returning(events.c.position, sort_by_parameter_order=True), rows
            )
            positions = [r[0] for r in result]
            await conn.execute(
                insert(outbox), [{"position": p, "enqueued_at": now} for p in positions]
            )
        except IntegrityError as exc:
            first = appends[0]
            raise ConcurrencyConflict(tenant_id, first.stream_id, first.expected_version) from exc
        return [a.expected_version + len(a.events) for a in appends]

    def _is_personal(self, type_name: str) -> bool:
        return self.vault is not None and self.vault.is_personal(type_name)

    async def _append_in_one_statement(
        self, tenant_id: str, stream_id: str, expected_version: int, new_events: Sequence[NewEvent]
    ) -> int:
        # PostgreSQL: events, outbox rows and the gap check in one statement, which is
        # its own transaction: one round trip instead of BEGIN, three statements, COMMIT.
        args = (
            [e.event_id for e in new_events],
            tenant_id,
            stream_id,
            expected_version,
            datetime.now(UTC),
            *_event_columns(new_events, [e.data for e in new_events]),
        )
        async with self.engine.connect() as conn:
            driver: Any = (await conn.get_raw_connection()).driver_connection
            try:
                status = await driver.execute(_APPEND_IN_ONE_STATEMENT, *args)
            except UniqueViolationError as exc:
                raise ConcurrencyConflict(tenant_id, stream_id, expected_version) from exc
        if status != f"INSERT 0 {len(new_events)}":  # the gap check let no row through
            raise ConcurrencyConflict(tenant_id, stream_id, expected_version)
        return expected_version + len(new_events)

    async def open_personal_data(
        self, conn: AsyncConnection, recorded: list[RecordedEvent]
    ) -> list[RecordedEvent]:
        """Decrypt personal fields; those of an erased subject read as redacted."""
        if self.vault is None:
            return recorded
        vault = self.vault
        subjects = [(e.tenant_id, e.partition_key) for e in recorded if vault.is_personal(e.type)]
        return open_events(vault, recorded, await vault.keys(conn, subjects))

    async def erase_personal_data(
        self, tenant_id: str, subject_id: str, *, conn: AsyncConnection
    ) -> None:
        """Destroy the subject's key: its personal fields become unreadable everywhere."""
        if self.vault is None:
            raise RuntimeError("this store keeps no personal data policy")
        await self.vault.erase(conn, tenant_id, subject_id)

    @staticmethod
    async def _current_version(conn: AsyncConnection, tenant_id: str, stream_id: str) -> int:
        result = await conn.execute(
            select(func.coalesce(func.max(events.c.version), 0)).where(
                events.c.tenant_id == tenant_id, events.c.stream_id == stream_id
            )
        )
        return int(result.scalar_one())

    async def stream_version(self, tenant_id: str, stream_id: str) -> int:
        async with self.engine.connect() as conn:
            return await self._current_version(conn, tenant_id, stream_id)

    async def read_stream(
        self,
        tenant_id: str,
        stream_id: str,
        *,
        after_version: int = 0,
        conn: AsyncConnection | None = None,
    ) -> list[RecordedEvent]:
        query = (
            select(*EVENT_COLUMNS)
            .where(
                events.c.tenant_id == tenant_id,
                events.c.stream_id == stream_id,
                events.c.version > after_version,
            )
            .order_by(events.c.version)
        )
        if conn is not None:
            return await self._read(conn, query)
        async with self.engine.connect() as own:
            return await self._read(own, query)

    async def _read(self, conn: AsyncConnection, query: Any) -> list[RecordedEvent]:
        return await self.open_personal_data(
            conn, [recorded_event(r) for r in await conn.execute(query)]
        )

    async def read_all(self, *, after_position: int = 0, limit: int = 1000) -> list[RecordedEvent]:
        """Committed events in position order (for republishing and rebuilding)."""
        query = (
            select(*EVENT_COLUMNS)
            .where(events.c.position > after_position)
            .order_by(events.c.position)
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            return await self._read(conn, query)
