"""The batch path: a batch folded in memory, then written in a handful of statements.

Each customer's row and each stream's version is read once (locked), the events
are folded in order, then every row, timeline line and stream version is written
at once. What needs reads between events (a merge, an erasure, a merged
duplicate) takes the event-by-event path in ``writer.py``; both paths run the
same appliers and a test holds them to the same tables.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, TypeVar

from sqlalchemy import Column, Delete, Insert, String, Update, and_, any_, bindparam, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import Executable
from sqlalchemy.sql.elements import ColumnElement

from libs.events import metrics
from libs.events.consumer import ReceivedEvent
from libs.platform.db import is_postgres
from services.customer360.domain.view import (
    TIMELINE_LENGTH,
    CustomerView,
    Fact,
    Position,
    Source,
    TimelineEntry,
)
from services.customer360.read_model.tables import Tables, row_of, timeline_row, view_of


@dataclass(frozen=True, slots=True)
class WriteStatements:
    """The statements every applied event runs, built once per generation and dialect.

    Values come as execution parameters (``bindparam``, or an INSERT's/UPDATE's
    column names), never baked in: SQLAlchemy memoizes a statement's cache key on
    the statement object, so a reused one skips rebuilding the statement and its
    key on every event and finds its compiled form in the engine's cache at once.
    """

    # Parameters: tenant_id, topic, stream_id, version. A row back: the version moved on.
    stream_upsert: Executable
    # Parameters: the customer's row (``row_of``); the update also key_tenant_id and
    # key_customer_id (a column's own name is reserved for its SET value).
    customer_insert: Insert
    customer_update: Update
    # Parameters: the timeline columns. A row back: the line is new.
    timeline_insert: Executable
    # Parameters: tenant_id, customer_id.
    timeline_trim: Delete


class BatchPath:
    """The batch path of ``Customer360Projection`` (which provides these attributes)."""

    name: ClassVar[str]
    tables: Tables
    _source_of: Mapping[str, Source]

    def _statements(self, conn: AsyncConnection) -> WriteStatements:
        raise NotImplementedError

    async def _fold(
        self, conn: AsyncConnection, events: Sequence[ReceivedEvent]
    ) -> FoldedBatch | None:
        placed: list[tuple[ReceivedEvent, Source, Any, str, str, Fact]] = []
        for event in events:
            source = self._source_of.get(event.topic)
            registered = source.applier_for(event.event) if source is not None else None
            if source is None or registered is None:
                continue  # says nothing about a customer (e.g. a custom field)
            envelope = event.envelope
            customer_id = registered.customer_of(event.event)
            if customer_id is None:
                continue  # about no customer (a lead's task)
            if not envelope.tenantid or not customer_id:
                return None  # apply() dead-letters it, on its own
            placed.append(
                (event, source, registered, envelope.tenantid, customer_id, fact_of(event))
            )
        batch = FoldedBatch()
        if not placed:
            return batch
        customers = sorted({(tenant, customer) for _, _, _, tenant, customer, _ in placed})
        loaded = await self._load_many(conn, customers)
        if loaded is None:
            return None  # a merged duplicate among them
        versions = await self._stream_versions(
            conn,
            sorted({(tenant, f.topic, f.stream_id) for *_, tenant, _, f in placed if versioned(f)}),
        )
        for event, source, registered, tenant, customer, fact in placed:
            key = (tenant, customer)
            if versioned(fact):
                stream = (tenant, fact.topic, fact.stream_id)
                if fact.sequence <= versions.get(stream, 0):
                    batch.skipped += 1
                    continue
                versions[stream] = fact.sequence
                batch.versions[stream] = fact.sequence
            if key not in batch.views:
                current = loaded.get(key)
                if current is None:
                    batch.new.add(key)
                batch.views[key] = current or CustomerView(tenant, customer)
            outcome = registered.apply(batch.views[key], event.event, fact)
            if outcome.effects or outcome.view.erased:
                return None
            batch.views[key] = stamped(outcome.view, fact, source)
            if outcome.entry is not None:
                batch.lines.append((key, outcome.entry, fact.topic))
        return batch

    async def _load_many(
        self, conn: AsyncConnection, customers: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], CustomerView] | None:
        """The customers' rows, locked; None when one of them is a merged duplicate."""
        c, m = self.tables.customers, self.tables.merges
        loaded: dict[tuple[str, str], CustomerView] = {}
        for tenant_id, ids in _by_first(customers).items():
            rows = await conn.execute(
                select(c, m.c.survivor_id)
                .select_from(
                    c.outerjoin(
                        m,
                        and_(m.c.tenant_id == c.c.tenant_id, m.c.duplicate_id == c.c.customer_id),
                    )
                )
                .where(c.c.tenant_id == tenant_id, _one_of(conn, c.c.customer_id, ids))
                .order_by(c.c.customer_id)  # locks taken in one order: no deadlock
                .with_for_update(of=c)
            )
            for row in rows.mappings():
                if row["survivor_id"] is not None:
                    return None
                loaded[(row["tenant_id"], row["customer_id"])] = view_of(row)
        missing = [key for key in customers if key not in loaded]
        for tenant_id, ids in _by_first(missing).items():
            # A duplicate's merge can be learnt (from its survivor) before its own events.
            merged = await conn.execute(
                select(m.c.duplicate_id).where(
                    m.c.tenant_id == tenant_id, _one_of(conn, m.c.duplicate_id, ids)
                )
            )
            if merged.first() is not None:
                return None
        return loaded

    async def _stream_versions(
        self, conn: AsyncConnection, streams: Sequence[tuple[str, str, str]]
    ) -> dict[tuple[str, str, str], int]:
        s = self.tables.streams
        versions: dict[tuple[str, str, str], int] = {}
        for (tenant_id, topic), ids in _by_first(
            [((tenant, topic), stream) for tenant, topic, stream in streams]
        ).items():
            rows = await conn.execute(
                select(s.c.stream_id, s.c.version)
                .where(
                    s.c.tenant_id == tenant_id,
                    s.c.topic == topic,
                    _one_of(conn, s.c.stream_id, ids),
                )
                .order_by(s.c.stream_id)
                .with_for_update()
            )
            versions.update({(tenant_id, topic, r.stream_id): int(r.version) for r in rows})
        return versions

    async def _write(self, conn: AsyncConnection, batch: FoldedBatch) -> None:
        statements = self._statements(conn)
        if batch.skipped:
            metrics.DUPLICATES_SKIPPED.labels(self.name).inc(batch.skipped)
        if batch.versions:
            # With RETURNING, SQLAlchemy sends many rows as multi-row VALUES statements
            # (each stream once in a batch, so ON CONFLICT never meets a row twice).
            await conn.execute(
                statements.stream_upsert,
                [
                    {"tenant_id": tenant, "topic": topic, "stream_id": stream, "version": version}
                    for (tenant, topic, stream), version in batch.versions.items()
                ],
            )
        new = [row_of(view) for key, view in batch.views.items() if key in batch.new]
        if new:
            await conn.execute(statements.customer_insert, new)
        changed = [
            {**row_of(view), "key_tenant_id": view.tenant_id, "key_customer_id": view.customer_id}
            for key, view in batch.views.items()
            if key not in batch.new
        ]
        if changed:
            await conn.execute(statements.customer_update, changed)
        if not batch.lines:
            return
        await conn.execute(
            statements.timeline_insert,
            [
                timeline_row(tenant, customer, entry, topic, erased=False)
                for (tenant, customer), entry, topic in batch.lines
            ],
        )
        # A customer new in this batch has no older lines: only its own can be over.
        # One call for them all: the driver sends the trims together (executemany),
        # each still the one-customer statement whose plan follows the primary key.
        gained = Counter(key for key, _, _ in batch.lines)
        trims = [
            {"tenant_id": tenant, "customer_id": customer}
            for (tenant, customer), count in gained.items()
            if (tenant, customer) not in batch.new or count > TIMELINE_LENGTH
        ]
        if trims:
            await conn.execute(statements.timeline_trim, trims)


@dataclass
class FoldedBatch:
    """What a batch changes, folded in memory before anything is written."""

    views: dict[tuple[str, str], CustomerView] = field(default_factory=dict)
    new: set[tuple[str, str]] = field(default_factory=set)  # no row before this batch
    versions: dict[tuple[str, str, str], int] = field(default_factory=dict)
    lines: list[tuple[tuple[str, str], TimelineEntry, str]] = field(default_factory=list)
    skipped: int = 0  # events already applied (redelivered, or stale)


K = TypeVar("K")


def _by_first(pairs: Iterable[tuple[K, str]]) -> dict[K, list[str]]:
    """The second items grouped by the first (a batch's ids per tenant, usually one)."""
    grouped: dict[K, list[str]] = {}
    for first, second in pairs:
        grouped.setdefault(first, []).append(second)
    return grouped


def _one_of(conn: AsyncConnection, column: Column[str], values: list[str]) -> ColumnElement[bool]:
    """``column`` is one of ``values``: one array parameter on PostgreSQL (one statement
    text and one index scan whatever the count), a plain IN list elsewhere."""
    if is_postgres(conn.engine):
        return column == any_(bindparam(None, values, type_=ARRAY(String)))
    return column.in_(values)


def fact_of(event: ReceivedEvent) -> Fact:
    envelope = event.envelope
    return Fact(
        event_id=envelope.id,
        type=envelope.type,
        time=envelope.time,
        stream_id=envelope.subject or envelope.partitionkey,
        sequence=envelope.sequence,
        topic=event.topic,
        partition=event.partition,
        offset=event.offset,
    )


def stamped(view: CustomerView, fact: Fact, source: Source) -> CustomerView:
    """``view`` marked as including ``fact``: its version, time and broker position."""
    return replace(
        view,
        version=max(view.version, fact.sequence) if source.customer_streams else view.version,
        updated_at=fact.time if view.updated_at is None else max(view.updated_at, fact.time),
        position=Position(fact.topic, fact.partition, fact.offset),
    )


def versioned(fact: Fact) -> bool:
    """Whether the producer numbers its streams (then a version says what is applied)."""
    return fact.sequence > 0 and bool(fact.stream_id)
