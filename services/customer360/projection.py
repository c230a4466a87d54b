"""The customer 360 read model: its tables and the projection that fills them.

Tables, one set per generation (a rebuild fills the next set while this one serves):

* ``customers``: one row per (tenant, customer): profile, tags, owner, key
  contacts, consent, merge links, erasure, the sections later services fill,
  the customer's stream version, where it was read, its interaction counters
  and its most recent interactions (bounded);
* ``timeline``: the latest events of each customer's own stream (bounded), each
  with a summary and the same summary without personal data;
* ``merges``: duplicate -> survivor, so a duplicate's id serves the survivor's
  view and the survivor's timeline shows the duplicate's history;
* ``streams``: the last version applied per source stream, so an event older
  than what is already applied (a stale redelivery) changes nothing.

The runtime (``libs.events.projection``) already drops an event whose id it
has applied; the stream versions catch what ids cannot (the same fact re-sent
under a new id, an old event after a newer one).

Merges: timeline lines and interactions stay with the customer whose stream
they came from and are joined at read time over the survivor and its
duplicates, so the result is the same whichever of the two customers'
partitions is applied first.

Reads are the hot path (a view per screen): a customer that was never merged is
two primary-key-ordered queries, its row (with any redirect joined in) and its
timeline.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any, TypeVar

from sqlalchemy import (
    BigInteger,
    BindParameter,
    Column,
    Date,
    Delete,
    Index,
    Insert,
    Integer,
    String,
    Table,
    Text,
    Update,
    and_,
    any_,
    bindparam,
    func,
    insert,
    literal_column,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSON, aggregate_order_by
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import Executable, Select
from sqlalchemy.sql.elements import ColumnElement, Label, UnaryExpression
from sqlalchemy.sql.selectable import Subquery

from libs.events import metrics
from libs.events.consumer import ReceivedEvent
from libs.events.db import JsonDocument, UtcDateTime, is_postgres
from libs.events.projection import Projection
from services.customer360.sources import SOURCES, catalog_of
from services.customer360.view import (
    TIMELINE_LENGTH,
    Consent,
    CustomerView,
    Effect,
    Fact,
    ForgetPersonalData,
    Interaction,
    Position,
    Profile,
    Redirect,
    Source,
    TimelineEntry,
    empty_sections,
    forget,
)

log = logging.getLogger(__name__)

# Merge chains (A into B, later B into C) are followed this far, and no further,
# so that corrupt data (a cycle) cannot loop a reader or the projector.
MAX_MERGE_DEPTH = 10

Id = String(64)


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
    # Parameters: tenant_id, customer_id.
    load: Select[Any]
    load_for_update: Select[Any]
    survivor_of: Select[Any]
    # Parameters: the customer's row (``_row_of``); the update also key_tenant_id and
    # key_customer_id (a column's own name is reserved for its SET value).
    customer_insert: Insert
    customer_update: Update
    # Parameters: the timeline columns. A row back: the line is new.
    timeline_insert: Executable
    # Parameters: tenant_id, customer_id.
    timeline_trim: Delete
    # Parameters: tenant_id, customer_id. The latest lines, newest first (a read).
    timeline_latest: Select[Any]
    # PostgreSQL only: ``load`` and, in column ``timeline``, the customer's own latest
    # lines as a JSON array of [event_id, type, occurred_at, customer_id, summary].
    load_with_timeline: Select[Any] | None


class Customer360Projection(Projection):
    name = "customer360"

    def __init__(self, generation: int = 1, sources: Sequence[Source] = SOURCES) -> None:
        super().__init__(generation)
        self.sources = tuple(sources)
        self.topics = tuple(source.topic for source in self.sources)
        self._source_of = {source.topic: source for source in self.sources}

        self.customers = Table(
            self.table_name("customers"),
            self.metadata,
            Column("tenant_id", Id, primary_key=True),
            Column("customer_id", Id, primary_key=True),
            Column("kind", String(16)),
            Column("name", Text, nullable=False),
            Column("email", Text),
            Column("phone", Text),
            Column("birthday", Date),
            Column("company_id", Id),
            Column("attributes", JsonDocument, nullable=False),
            Column("registered_at", UtcDateTime),
            Column("tags", JsonDocument, nullable=False),
            Column("owner_id", Id),
            Column("key_contacts", JsonDocument, nullable=False),
            Column("consents", JsonDocument, nullable=False),
            Column("interaction_count", Integer, nullable=False),
            Column("last_interaction_at", UtcDateTime),
            Column("recent_interactions", JsonDocument, nullable=False),
            Column("merged_into", Id),
            Column("absorbed", JsonDocument, nullable=False),
            Column("erased_at", UtcDateTime),
            Column("sections", JsonDocument, nullable=False),
            Column("version", BigInteger, nullable=False),
            Column("updated_at", UtcDateTime),
            Column("position_topic", String(200)),
            Column("position_partition", Integer),
            Column("position_offset", BigInteger),
        )
        self.timeline = Table(
            self.table_name("timeline"),
            self.metadata,
            Column("tenant_id", Id, primary_key=True),
            Column("customer_id", Id, primary_key=True),
            Column("event_id", String(64), primary_key=True),
            Column("type", String(200), nullable=False),
            Column("occurred_at", UtcDateTime, nullable=False),
            Column("sequence", BigInteger, nullable=False),
            Column("topic", String(200), nullable=False),
            Column("summary", Text, nullable=False),
            Column("redacted_summary", Text, nullable=False),
        )
        self.merges = Table(
            self.table_name("merges"),
            self.metadata,
            Column("tenant_id", Id, primary_key=True),
            Column("duplicate_id", Id, primary_key=True),
            Column("survivor_id", Id, nullable=False),
        )
        self.streams = Table(
            self.table_name("streams"),
            self.metadata,
            Column("tenant_id", Id, primary_key=True),
            Column("topic", String(200), primary_key=True),
            Column("stream_id", String(64), primary_key=True),
            Column("version", BigInteger, nullable=False),
        )
        # Index names are global in a PostgreSQL schema: each generation names its own.
        for table, columns in (
            (self.timeline, ("tenant_id", "customer_id", "occurred_at")),
            (self.merges, ("tenant_id", "survivor_id")),
        ):
            Index(f"ix_{table.name}_{columns[-1]}", *(table.c[c] for c in columns))
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
        if not tenant_id or not customer_id:
            raise UnplaceableEvent(f"{envelope.type} {envelope.id} names no tenant or customer")
        fact = _fact_of(event)
        if not await self._newer_than_applied(conn, tenant_id, fact):
            metrics.DUPLICATES_SKIPPED.labels(self.name).inc()
            return

        current, survivor_id = await self.load_with_survivor(
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
        c, m = self.customers, self.merges
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
                loaded[(row["tenant_id"], row["customer_id"])] = _view_of(row)
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
        s = self.streams
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
        new = [_row_of(view) for key, view in batch.views.items() if key in batch.new]
        if new:
            await conn.execute(statements.customer_insert, new)
        changed = [
            {**_row_of(view), "key_tenant_id": view.tenant_id, "key_customer_id": view.customer_id}
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
        gained = Counter(key for key, _, _ in batch.lines)
        for (tenant, customer), count in gained.items():
            if (tenant, customer) not in batch.new or count > TIMELINE_LENGTH:
                await conn.execute(
                    statements.timeline_trim, {"tenant_id": tenant, "customer_id": customer}
                )

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
        row = _row_of(view)
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
                    stmt = _insert(conn)(self.merges).values(
                        tenant_id=view.tenant_id,
                        duplicate_id=duplicate_id,
                        survivor_id=survivor_id,
                    )
                    await conn.execute(
                        stmt.on_conflict_do_update(
                            index_elements=[self.merges.c.tenant_id, self.merges.c.duplicate_id],
                            set_={"survivor_id": stmt.excluded.survivor_id},
                        )
                    )
            case ForgetPersonalData():
                await self._forget_group(conn, view)

    async def _forget_group(self, conn: AsyncConnection, view: CustomerView) -> None:
        """Erasure reaches everything shown in this customer's view: its own rows and
        those of the duplicates merged into it."""
        assert view.erased_at is not None
        group = await self.group_of(conn, view.tenant_id, view.customer_id)
        for duplicate_id in group[1:]:
            duplicate = await self.load(conn, view.tenant_id, duplicate_id, for_update=True)
            if duplicate is not None and not duplicate.erased:
                await self._save(conn, forget(duplicate, view.erased_at), new=False)
        t = self.timeline
        await conn.execute(
            update(t)
            .where(t.c.tenant_id == view.tenant_id, t.c.customer_id.in_(group))
            .values(summary=t.c.redacted_summary)
        )

    async def _survivor_erased(
        self, conn: AsyncConnection, tenant_id: str, survivor_id: str
    ) -> bool:
        survivors = [survivor_id, *await self.survivors_of(conn, tenant_id, survivor_id)]
        c = self.customers
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
            statements = self._build_statements(_insert(conn), postgres=is_postgres(conn.engine))
            self._statements_by_dialect[conn.dialect.name] = statements
        return statements

    def _build_statements(self, dialect_insert: Any, *, postgres: bool) -> _Statements:
        c, t, m, s = self.customers, self.timeline, self.merges, self.streams
        tenant_id: BindParameter[str] = bindparam("tenant_id")
        customer_id: BindParameter[str] = bindparam("customer_id")

        stream = dialect_insert(s)
        stream_upsert = stream.on_conflict_do_update(
            index_elements=[s.c.tenant_id, s.c.topic, s.c.stream_id],
            set_={"version": stream.excluded.version},
            where=s.c.version < stream.excluded.version,
        ).returning(s.c.stream_id)

        load = (
            select(c, m.c.survivor_id)
            .select_from(
                c.outerjoin(
                    m, and_(m.c.tenant_id == c.c.tenant_id, m.c.duplicate_id == c.c.customer_id)
                )
            )
            .where(c.c.tenant_id == tenant_id, c.c.customer_id == customer_id)
        )
        # Partitions of different topics (contacts, later pipeline...) for one
        # customer may be applied by different consumers at once: no lost update.
        load_for_update = load.with_for_update(of=c)

        older = (
            select(t.c.event_id)
            .where(t.c.tenant_id == tenant_id, t.c.customer_id == customer_id)
            .order_by(*_newest_first(t))
            .offset(TIMELINE_LENGTH)
        )
        latest = (
            select(*_timeline_columns(t))
            .where(t.c.tenant_id == tenant_id, t.c.customer_id == customer_id)
            .order_by(*_newest_first(t))
            .limit(TIMELINE_LENGTH)
        )
        return _Statements(
            stream_upsert=stream_upsert,
            load=load,
            load_for_update=load_for_update,
            survivor_of=select(m.c.survivor_id).where(
                m.c.tenant_id == tenant_id, m.c.duplicate_id == customer_id
            ),
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
            timeline_latest=latest,
            load_with_timeline=load.add_columns(
                _as_json_array(latest.add_columns(t.c.sequence).subquery("latest"))
            )
            if postgres
            else None,
        )

    # --- queries the projector and the readers share ----------------------------------

    async def load(
        self, conn: AsyncConnection, tenant_id: str, customer_id: str, *, for_update: bool = False
    ) -> CustomerView | None:
        c = self.customers
        query = select(c).where(c.c.tenant_id == tenant_id, c.c.customer_id == customer_id)
        if for_update:
            query = query.with_for_update()  # as in load_with_survivor
        row = (await conn.execute(query)).mappings().first()
        return _view_of(row) if row is not None else None

    async def load_with_survivor(
        self, conn: AsyncConnection, tenant_id: str, customer_id: str, *, for_update: bool = False
    ) -> tuple[CustomerView | None, str | None]:
        """The customer's row and the customer it was merged into (if any).

        One query when the row exists (the usual case). Either may exist without
        the other: a merge can be learnt from the survivor's stream before the
        duplicate's own events are applied.
        """
        statements = self._statements(conn)
        key = {"tenant_id": tenant_id, "customer_id": customer_id}
        query = statements.load_for_update if for_update else statements.load
        row = (await conn.execute(query, key)).mappings().first()
        if row is not None:
            return _view_of(row), row["survivor_id"]
        survivor_id = await conn.scalar(statements.survivor_of, key)
        return None, survivor_id

    async def load_for_reading(
        self, conn: AsyncConnection, tenant_id: str, customer_id: str
    ) -> tuple[CustomerView, str | None, list[dict[str, Any]]] | None:
        """The customer's row, the customer it was merged into and its own latest
        timeline lines, in one statement (PostgreSQL); None where that is not possible
        (another dialect, or no row: the caller then takes the general path)."""
        statement = self._statements(conn).load_with_timeline
        if statement is None:
            return None
        key = {"tenant_id": tenant_id, "customer_id": customer_id}
        row = (await conn.execute(statement, key)).mappings().first()
        if row is None:
            return None
        lines = [
            {
                "event_id": event_id,
                "type": type_,
                # json renders timestamptz in the session's time zone: back to UTC.
                "occurred_at": datetime.fromisoformat(occurred_at).astimezone(UTC),
                "customer_id": line_customer_id,
                "summary": summary,
            }
            for event_id, type_, occurred_at, line_customer_id, summary in row["timeline"]
        ]
        return _view_of(row), row["survivor_id"], lines

    async def version_of(
        self, conn: AsyncConnection, tenant_id: str, customer_id: str
    ) -> int | None:
        c = self.customers
        version = await conn.scalar(
            select(c.c.version).where(c.c.tenant_id == tenant_id, c.c.customer_id == customer_id)
        )
        return int(version) if version is not None else None

    async def count_for_rebuild(self, conn: AsyncConnection) -> int:
        """Registered customers (a row only other services' events made is not one)."""
        c = self.customers
        return int(
            await conn.scalar(select(func.count()).select_from(c).where(c.c.kind.is_not(None)))
            or 0
        )

    async def survivors_of(
        self, conn: AsyncConnection, tenant_id: str, customer_id: str
    ) -> list[str]:
        """The customers ``customer_id`` was merged into, nearest first."""
        survivor_of = self._statements(conn).survivor_of
        chain: list[str] = []
        current = customer_id
        for _ in range(MAX_MERGE_DEPTH):
            survivor = await conn.scalar(
                survivor_of, {"tenant_id": tenant_id, "customer_id": current}
            )
            if survivor is None or survivor == customer_id or survivor in chain:
                break
            chain.append(survivor)
            current = survivor
        return chain

    async def group_of(self, conn: AsyncConnection, tenant_id: str, customer_id: str) -> list[str]:
        """The customer and every duplicate merged into it, directly or not."""
        m = self.merges
        group = [customer_id]
        frontier = [customer_id]
        for _ in range(MAX_MERGE_DEPTH):
            found = await conn.scalars(
                select(m.c.duplicate_id).where(
                    m.c.tenant_id == tenant_id, m.c.survivor_id.in_(frontier)
                )
            )
            frontier = [d for d in found if d not in group]
            if not frontier:
                break
            group.extend(frontier)
        return group

    async def timeline_of(
        self, conn: AsyncConnection, tenant_id: str, customer_ids: Iterable[str]
    ) -> list[dict[str, Any]]:
        ids = list(customer_ids)
        if len(ids) == 1:  # never merged, the usual read: a prebuilt statement
            rows = await conn.execute(
                self._statements(conn).timeline_latest,
                {"tenant_id": tenant_id, "customer_id": ids[0]},
            )
            return [dict(r) for r in rows.mappings()]
        t = self.timeline
        rows = await conn.execute(
            select(*_timeline_columns(t))
            .where(t.c.tenant_id == tenant_id, t.c.customer_id.in_(ids))
            .order_by(*_newest_first(t))
            .limit(TIMELINE_LENGTH)
        )
        return [dict(r) for r in rows.mappings()]

    async def interactions_of(
        self, conn: AsyncConnection, tenant_id: str, customer_ids: Iterable[str]
    ) -> dict[str, tuple[Interaction, ...]]:
        """Recent interactions of other customers (a survivor's duplicates)."""
        c = self.customers
        rows = await conn.execute(
            select(c.c.customer_id, c.c.recent_interactions).where(
                c.c.tenant_id == tenant_id, c.c.customer_id.in_(list(customer_ids))
            )
        )
        return {r.customer_id: _interactions_of(r.recent_interactions) for r in rows}


def projection_factory(generation: int) -> Customer360Projection:
    """Generation ``generation`` of the view (``crm rebuild customer360`` uses it)."""
    return Customer360Projection(generation, SOURCES)


# What the projector decodes with: every source's catalog (``crm rebuild`` uses it too).
catalog = catalog_of(SOURCES)


def _insert(conn: AsyncConnection) -> Any:
    """The dialect's INSERT, which knows ON CONFLICT on both PostgreSQL and SQLite."""
    return pg_insert if conn.dialect.name == "postgresql" else sqlite_insert


# --- rows <-> views ---------------------------------------------------------------------


def _row_of(view: CustomerView) -> dict[str, Any]:
    profile = view.profile
    return {
        "tenant_id": view.tenant_id,
        "customer_id": view.customer_id,
        "kind": profile.kind,
        "name": profile.name,
        "email": profile.email,
        "phone": profile.phone,
        "birthday": profile.birthday,
        "company_id": profile.company_id,
        "attributes": dict(profile.attributes),
        "registered_at": profile.registered_at,
        "tags": list(view.tags),
        "owner_id": view.owner_id,
        "key_contacts": dict(view.key_contacts),
        "consents": {
            channel: {"granted": c.granted, "source": c.source, "at": c.at.isoformat()}
            for channel, c in view.consents.items()
        },
        "interaction_count": view.interaction_count,
        "last_interaction_at": view.last_interaction_at,
        "recent_interactions": [
            {
                "interaction_id": i.interaction_id,
                "channel": i.channel,
                "direction": i.direction,
                "summary": i.summary,
                "by": i.by,
                "occurred_at": i.occurred_at.isoformat(),
            }
            for i in view.recent_interactions
        ],
        "merged_into": view.merged_into,
        "absorbed": list(view.absorbed),
        "erased_at": view.erased_at,
        "sections": dict(view.sections),
        "version": view.version,
        "updated_at": view.updated_at,
        "position_topic": view.position.topic if view.position else None,
        "position_partition": view.position.partition if view.position else None,
        "position_offset": view.position.offset if view.position else None,
    }


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


def _newest_first(lines: Table | Subquery) -> tuple[UnaryExpression[Any], ...]:
    """The timeline's order: newest first, by time, then version, then event id."""
    return (lines.c.occurred_at.desc(), lines.c.sequence.desc(), lines.c.event_id.desc())


def _as_json_array(latest: Subquery) -> Label[Any]:
    """``latest``'s lines as one JSON array of [event_id, type, occurred_at, customer_id,
    summary], in the timeline's order (PostgreSQL)."""
    line = func.json_build_array(
        latest.c.event_id,
        latest.c.type,
        latest.c.occurred_at,
        latest.c.customer_id,
        latest.c.summary,
    )
    lines = func.json_agg(aggregate_order_by(line, *_newest_first(latest)))
    or_empty = func.coalesce(lines, literal_column("'[]'::json"), type_=JSON)
    return select(or_empty).scalar_subquery().label("timeline")


def _timeline_columns(t: Table) -> tuple[Column[Any], ...]:
    return (t.c.event_id, t.c.type, t.c.occurred_at, t.c.customer_id, t.c.summary)


def _view_of(row: Any) -> CustomerView:
    position = None
    if row["position_topic"] is not None:
        position = Position(
            row["position_topic"], int(row["position_partition"]), int(row["position_offset"])
        )
    birthday = row["birthday"]
    return CustomerView(
        tenant_id=row["tenant_id"],
        customer_id=row["customer_id"],
        profile=Profile(
            kind=row["kind"],
            name=row["name"],
            email=row["email"],
            phone=row["phone"],
            birthday=date.fromisoformat(birthday) if isinstance(birthday, str) else birthday,
            company_id=row["company_id"],
            attributes=dict(row["attributes"] or {}),
            registered_at=row["registered_at"],
        ),
        tags=tuple(row["tags"] or ()),
        owner_id=row["owner_id"],
        key_contacts=dict(row["key_contacts"] or {}),
        consents={
            channel: Consent(
                granted=bool(c["granted"]),
                source=str(c["source"]),
                at=datetime.fromisoformat(c["at"]),
            )
            for channel, c in (row["consents"] or {}).items()
        },
        interaction_count=int(row["interaction_count"]),
        last_interaction_at=row["last_interaction_at"],
        recent_interactions=_interactions_of(row["recent_interactions"]),
        merged_into=row["merged_into"],
        absorbed=tuple(row["absorbed"] or ()),
        erased_at=row["erased_at"],
        sections={**empty_sections(), **(row["sections"] or {})},
        version=int(row["version"]),
        updated_at=row["updated_at"],
        position=position,
    )


def _interactions_of(items: Any) -> tuple[Interaction, ...]:
    return tuple(
        Interaction(
            interaction_id=str(i["interaction_id"]),
            channel=str(i["channel"]),
            direction=str(i["direction"]),
            summary=str(i["summary"]),
            by=str(i["by"]),
            occurred_at=datetime.fromisoformat(i["occurred_at"]),
        )
        for i in items or ()
    )
