"""Writing the 360 view: the projection that applies events to one generation's tables.

Two paths apply the same appliers (``domain/``): a batch folded in memory and
written in a handful of statements, and an event at a time for what needs reads
between events (merges, erasures, merged duplicates). Decision 4 says why the
tables look as they do; merges and erasures are explained there too.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from sqlalchemy import (
    BindParameter,
    Column,
    Delete,
    Insert,
    String,
    Update,
    and_,
    any_,
    bindparam,
    insert,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import Executable
from sqlalchemy.sql.elements import ColumnElement

from libs.events import metrics
from libs.events.consumer import ReceivedEvent
from libs.events.projection import Projection
from libs.platform.db import is_postgres
from services.customer360.domain.sources import SOURCES
from services.customer360.domain.view import (
    TIMELINE_LENGTH,
    CustomerView,
    Effect,
    Fact,
    ForgetPersonalData,
    Position,
    Redirect,
    Source,
    TimelineEntry,
    forget,
)
from services.customer360.read_model.queries import ViewQueries
from services.customer360.read_model.tables import NAME, Tables, newest_first, row_of, view_of

log = logging.getLogger(__name__)


class UnplaceableEvent(ValueError):
    """An event that names no tenant or no customer: dead-lettered, never guessed."""


@dataclass(frozen=True, slots=True)
class _Statements:
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


class Customer360Projection(Projection):
    name = NAME

    def __init__(self, generation: int = 1, sources: Sequence[Source] = SOURCES) -> None:
        super().__init__(generation)
        self.sources = tuple(sources)
        self.topics = tuple(source.topic for source in self.sources)
        self._source_of = {source.topic: source for source in self.sources}

        self.tables = Tables.of(generation, self.metadata, self.table_name)
        self.queries = ViewQueries(self.tables)
        self._statements_by_dialect: dict[str, _Statements] = {}

    # --- applying one event -----------------------------------------------------------

    async def apply(self, conn: AsyncConnection, event: ReceivedEvent) -> None:
        source = self._source_of.get(event.topic)
        registered = source.applier_for(event.event) if source is not None else None
        if source is None or registered is None:
            return  # a type that says nothing about a customer (e.g. a custom field)
        envelope = event.envelope
        tenant_id = envelope.tenantid
        customer_id = registered.customer_of(event.event)
        if customer_id is None:
            return  # about no customer (a lead's task)
        if not tenant_id or not customer_id:
            raise UnplaceableEvent(f"{envelope.type} {envelope.id} names no tenant or customer")
        fact = _fact_of(event)
        if not await self._newer_than_applied(conn, tenant_id, fact):
            metrics.DUPLICATES_SKIPPED.labels(self.name).inc()
            return

        current, survivor_id = await self.queries.load_with_survivor(
            conn, tenant_id, customer_id, for_update=True
        )
        before = current or CustomerView(tenant_id, customer_id)
        outcome = registered.apply(before, event.event, fact)
        view = outcome.view
        # An erased customer stays erased whatever comes later (a late interaction,
        # a deal). And a duplicate's history shows in its survivor's view: if the
        # survivor was erased first (its partition ran ahead), the duplicate's goes too.
        if view.erased or (
            survivor_id is not None and await self._survivor_erased(conn, tenant_id, survivor_id)
        ):
            view = forget(view, view.erased_at or fact.time)
        view = _stamped(view, fact, source)
        await self._save(conn, view, new=current is None)
        if outcome.entry is not None:
            await self._add_to_timeline(conn, view, outcome.entry, fact.topic, new=current is None)
        for effect in outcome.effects:
            await self._carry_out(conn, view, effect)

    async def apply_many(self, conn: AsyncConnection, events: Sequence[ReceivedEvent]) -> None:
        """A batch in a handful of statements: each customer's row and each stream's
        version read once (locked), the events folded in memory in order, then every
        row, timeline line and stream version written at once.

        A batch that merges or erases anyone, touches a merged duplicate, or holds an
        event that names no customer takes the event-by-event path (``apply``): those
        need reads between events. Nothing is written before that choice is made.
        """
        batch = await self._fold(conn, events)
        if batch is None:
            await super().apply_many(conn, events)  # one event at a time
            return
        await self._write(conn, batch)

    async def _fold(
        self, conn: AsyncConnection, events: Sequence[ReceivedEvent]
    ) -> _FoldedBatch | None:
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
                (event, source, registered, envelope.tenantid, customer_id, _fact_of(event))
            )
        batch = _FoldedBatch()
        if not placed:
            return batch
        customers = sorted({(tenant, customer) for _, _, _, tenant, customer, _ in placed})
        loaded = await self._load_many(conn, customers)
        if loaded is None:
            return None  # a merged duplicate among them
        versions = await self._stream_versions(
            conn,
            sorted(
                {(tenant, f.topic, f.stream_id) for *_, tenant, _, f in placed if _versioned(f)}
            ),
        )
        for event, source, registered, tenant, customer, fact in placed:
            key = (tenant, customer)
            if _versioned(fact):
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
            batch.views[key] = _stamped(outcome.view, fact, source)
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

    async def _write(self, conn: AsyncConnection, batch: _FoldedBatch) -> None:
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
                {
                    "tenant_id": tenant,
                    "customer_id": customer,
                    "event_id": entry.event_id,
                    "type": entry.type,
                    "occurred_at": entry.time,
                    "sequence": entry.sequence,
                    "topic": topic,
                    "summary": entry.summary,
                    "redacted_summary": entry.redacted_summary,
                }
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

    async def _newer_than_applied(self, conn: AsyncConnection, tenant_id: str, fact: Fact) -> bool:
        """Record ``fact.sequence`` as its stream's version unless one as new is there."""
        if not _versioned(fact):
            return True  # a producer without stream versions: the event id is all we have
        moved = await conn.execute(
            self._statements(conn).stream_upsert,
            {
                "tenant_id": tenant_id,
                "topic": fact.topic,
                "stream_id": fact.stream_id,
                "version": fact.sequence,
            },
        )
        return moved.first() is not None  # inserted (a new stream) or moved forward

    async def _save(self, conn: AsyncConnection, view: CustomerView, *, new: bool) -> None:
        row = row_of(view)
        statements = self._statements(conn)
        if new:
            # A plain insert: two writers creating one customer conflict and the
            # batch is retried, instead of one silently overwriting the other.
            await conn.execute(statements.customer_insert, row)
            return
        await conn.execute(
            statements.customer_update,
            {**row, "key_tenant_id": view.tenant_id, "key_customer_id": view.customer_id},
        )

    async def _add_to_timeline(
        self,
        conn: AsyncConnection,
        view: CustomerView,
        entry: TimelineEntry,
        topic: str,
        *,
        new: bool,
    ) -> None:
        """Add ``entry`` to the customer's own timeline and keep its newest lines only.

        The timeline is trimmed after every line it gains, so it never holds more
        than TIMELINE_LENGTH lines and the trim is skipped when it cannot remove
        any: the line was there already, or ``new`` (the customer had no row before
        this event, so no line either: a line is only written after its customer's
        row, in the same transaction, and customer rows are never deleted).
        """
        statements = self._statements(conn)
        summary = entry.redacted_summary if view.erased else entry.summary
        inserted = await conn.execute(
            statements.timeline_insert,
            {
                "tenant_id": view.tenant_id,
                "customer_id": view.customer_id,
                "event_id": entry.event_id,
                "type": entry.type,
                "occurred_at": entry.time,
                "sequence": entry.sequence,
                "topic": topic,
                "summary": summary,
                "redacted_summary": entry.redacted_summary,
            },
        )
        if new or inserted.first() is None:
            return
        await conn.execute(
            statements.timeline_trim,
            {"tenant_id": view.tenant_id, "customer_id": view.customer_id},
        )

    async def _carry_out(self, conn: AsyncConnection, view: CustomerView, effect: Effect) -> None:
        match effect:
            case Redirect(duplicate_id=duplicate_id, survivor_id=survivor_id):
                if duplicate_id != survivor_id:
                    merges = self.tables.merges
                    stmt = _insert(conn)(merges).values(
                        tenant_id=view.tenant_id,
                        duplicate_id=duplicate_id,
                        survivor_id=survivor_id,
                    )
                    await conn.execute(
                        stmt.on_conflict_do_update(
                            index_elements=[
                                self.tables.merges.c.tenant_id,
                                self.tables.merges.c.duplicate_id,
                            ],
                            set_={"survivor_id": stmt.excluded.survivor_id},
                        )
                    )
            case ForgetPersonalData():
                await self._forget_group(conn, view)

    async def _forget_group(self, conn: AsyncConnection, view: CustomerView) -> None:
        """Erasure reaches everything shown in this customer's view: its own rows and
        those of the duplicates merged into it."""
        assert view.erased_at is not None
        group = await self.queries.group_of(conn, view.tenant_id, view.customer_id)
        for duplicate_id in group[1:]:
            duplicate = await self.queries.load(conn, view.tenant_id, duplicate_id, for_update=True)
            if duplicate is not None and not duplicate.erased:
                await self._save(conn, forget(duplicate, view.erased_at), new=False)
        t = self.tables.timeline
        await conn.execute(
            update(t)
            .where(t.c.tenant_id == view.tenant_id, t.c.customer_id.in_(group))
            .values(summary=t.c.redacted_summary)
        )

    async def _survivor_erased(
        self, conn: AsyncConnection, tenant_id: str, survivor_id: str
    ) -> bool:
        survivors = [survivor_id, *await self.queries.survivors_of(conn, tenant_id, survivor_id)]
        c = self.tables.customers
        erased = await conn.execute(
            select(c.c.customer_id).where(
                c.c.tenant_id == tenant_id,
                c.c.customer_id.in_(survivors),
                c.c.erased_at.is_not(None),
            )
        )
        return erased.first() is not None

    # --- statements reused for every event -----------------------------------------------

    def _statements(self, conn: AsyncConnection) -> _Statements:
        """This generation's statements for ``conn``'s dialect (ON CONFLICT is per dialect)."""
        statements = self._statements_by_dialect.get(conn.dialect.name)
        if statements is None:
            statements = self._build_statements(_insert(conn))
            self._statements_by_dialect[conn.dialect.name] = statements
        return statements

    def _build_statements(self, dialect_insert: Any) -> _Statements:
        c, t, s = self.tables.customers, self.tables.timeline, self.tables.streams
        tenant_id: BindParameter[str] = bindparam("tenant_id")
        customer_id: BindParameter[str] = bindparam("customer_id")

        stream = dialect_insert(s)
        stream_upsert = stream.on_conflict_do_update(
            index_elements=[s.c.tenant_id, s.c.topic, s.c.stream_id],
            set_={"version": stream.excluded.version},
            where=s.c.version < stream.excluded.version,
        ).returning(s.c.stream_id)
        older = (
            select(t.c.event_id)
            .where(t.c.tenant_id == tenant_id, t.c.customer_id == customer_id)
            .order_by(*newest_first(t))
            .offset(TIMELINE_LENGTH)
        )
        return _Statements(
            stream_upsert=stream_upsert,
            customer_insert=insert(c),
            customer_update=update(c).where(
                c.c.tenant_id == bindparam("key_tenant_id"),
                c.c.customer_id == bindparam("key_customer_id"),
            ),
            timeline_insert=dialect_insert(t).on_conflict_do_nothing().returning(t.c.event_id),
            timeline_trim=t.delete().where(
                t.c.tenant_id == tenant_id,
                t.c.customer_id == customer_id,
                t.c.event_id.in_(older),
            ),
        )


def projection_factory(generation: int) -> Customer360Projection:
    """Generation ``generation`` of the view (``crm rebuild customer360`` uses it)."""
    return Customer360Projection(generation, SOURCES)


def _insert(conn: AsyncConnection) -> Any:
    """The dialect's INSERT, which knows ON CONFLICT on both PostgreSQL and SQLite."""
    return pg_insert if conn.dialect.name == "postgresql" else sqlite_insert


@dataclass
class _FoldedBatch:
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


def _fact_of(event: ReceivedEvent) -> Fact:
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


def _stamped(view: CustomerView, fact: Fact, source: Source) -> CustomerView:
    """``view`` marked as including ``fact``: its version, time and broker position."""
    return replace(
        view,
        version=max(view.version, fact.sequence) if source.customer_streams else view.version,
        updated_at=fact.time if view.updated_at is None else max(view.updated_at, fact.time),
        position=Position(fact.topic, fact.partition, fact.offset),
    )


def _versioned(fact: Fact) -> bool:
    """Whether the producer numbers its streams (then a version says what is applied)."""
    return fact.sequence > 0 and bool(fact.stream_id)
