"""The event store: the source of truth of every service.

Events are appended to a stream (one aggregate) with the version the writer
last saw. A unique (tenant, stream, version) constraint is the whole of the
optimistic concurrency: two writers at the same version cannot both insert, so
one gets :class:`ConcurrencyConflict` and writes nothing. The outbox row is
written in the same transaction, so an event is published if and only if it
was stored.

Its tables are in ``store_tables.py``, what goes in and comes out in ``records.py``
and its PostgreSQL routines in ``store_routines.py``; they are re-exported here.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from asyncpg.exceptions import UniqueViolationError
from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from libs.events.records import ConcurrencyConflict, NewEvent, RecordedEvent, StreamAppend
from libs.events.store_routines import (
    APPEND_IN_ONE_STATEMENT,
    START_STREAM_PARAMETERS,
    START_STREAM_ROUTINE,
    event_columns,
)
from libs.events.store_tables import (
    EVENT_COLUMNS,
    events,
    metadata,
    outbox,
    personal_data_keys,
    recorded_event,
)
from libs.events.tracing import appending, stamped
from libs.events.vault import PersonalDataPolicy, PersonalDataVault, open_events
from libs.platform.db import is_postgres

__all__ = [
    "EVENT_COLUMNS",
    "START_STREAM_PARAMETERS",
    "START_STREAM_ROUTINE",
    "ConcurrencyConflict",
    "EventStore",
    "NewEvent",
    "RecordedEvent",
    "StreamAppend",
    "events",
    "metadata",
    "outbox",
    "personal_data_keys",
    "recorded_event",
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
        new_events = stamped(new_events)  # the caller calls the routine ``appending``
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
            *event_columns(new_events, data),
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
        with appending(sum(len(a.events) for a in appends)):
            return await self._append_many(tenant_id, appends, conn)

    async def _append_many(
        self, tenant_id: str, appends: Sequence[StreamAppend], conn: AsyncConnection
    ) -> list[int]:
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
        flat = [(a, i, e) for a in appends for i, e in enumerate(stamped(a.events), start=1)]
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
                "traceparent": e.traceparent,
                "tracestate": e.tracestate,
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
        with appending(len(new_events)):
            return await self._append_in_one_round_trip(
                tenant_id, stream_id, expected_version, stamped(new_events)
            )

    async def _append_in_one_round_trip(
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
            *event_columns(new_events, [e.data for e in new_events]),
        )
        async with self.engine.connect() as conn:
            driver: Any = (await conn.get_raw_connection()).driver_connection
            try:
                status = await driver.execute(APPEND_IN_ONE_STATEMENT, *args)
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
