"""Writing the 360 view: the projection that applies events to one generation's tables.

Two paths apply the same appliers (``domain/``): a batch folded in memory and
written in a handful of statements, and an event at a time for what needs reads
between events (merges, erasures, merged duplicates). Decision 4 says why the
tables look as they do; merges and erasures are explained there too.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    BindParameter,
    bindparam,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from libs.events import metrics
from libs.events.consumer import ReceivedEvent
from libs.events.projection import Projection
from libs.platform.db import is_postgres, upsert_for
from services.customer360.domain.sources import SOURCES
from services.customer360.domain.view import (
    TIMELINE_LENGTH,
    CustomerView,
    Effect,
    Fact,
    ForgetPersonalData,
    Redirect,
    Source,
    TimelineEntry,
    forget,
    redacted,
)
from services.customer360.read_model.applied import announce
from services.customer360.read_model.batch import (
    BatchPath,
    WriteStatements,
    fact_of,
    stamped,
    versioned,
)
from services.customer360.read_model.queries import ViewQueries
from services.customer360.read_model.tables import (
    NAME,
    Tables,
    newest_first,
    row_of,
    timeline_row,
)

log = logging.getLogger(__name__)


class UnplaceableEvent(ValueError):
    """An event that names no tenant or no customer: dead-lettered, never guessed."""


class Customer360Projection(BatchPath, Projection):
    name = NAME

    def __init__(self, generation: int = 1, sources: Sequence[Source] = SOURCES) -> None:
        super().__init__(generation)
        self.sources = tuple(sources)
        self.topics = tuple(source.topic for source in self.sources)
        self._source_of = {source.topic: source for source in self.sources}

        self.tables = Tables.of(generation, self.metadata, self.table_name)
        self.queries = ViewQueries(self.tables)
        self._statements_by_dialect: dict[str, WriteStatements] = {}

    async def count_for_rebuild(self, conn: AsyncConnection) -> int:
        """Registered customers (a row only other services' events made is not one)."""
        c = self.tables.customers
        count = await conn.scalar(select(func.count()).select_from(c).where(c.c.kind.is_not(None)))
        return int(count or 0)

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
        fact = fact_of(event)
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
        view = stamped(view, fact, source)
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
        else:
            await self._write(conn, batch)
        if is_postgres(conn.engine):
            customers = self._customers_whose_version_moves(events)
            if customers:
                await announce(conn, customers)  # wakes their ?min_version reads

    def _customers_whose_version_moves(
        self, events: Sequence[ReceivedEvent]
    ) -> set[tuple[str, str]]:
        customers = set()
        for event in events:
            source = self._source_of.get(event.topic)
            if source is None or not source.customer_streams:
                continue
            registered = source.applier_for(event.event)
            customer_id = registered.customer_of(event.event) if registered else None
            if customer_id and event.envelope.tenantid:
                customers.add((event.envelope.tenantid, customer_id))
        return customers

    async def _newer_than_applied(self, conn: AsyncConnection, tenant_id: str, fact: Fact) -> bool:
        """Record ``fact.sequence`` as its stream's version unless one as new is there."""
        if not versioned(fact):
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
        inserted = await conn.execute(
            statements.timeline_insert,
            timeline_row(view.tenant_id, view.customer_id, entry, topic, erased=view.erased),
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
        in_group = (t.c.tenant_id == view.tenant_id, t.c.customer_id.in_(group))
        await conn.execute(update(t).where(*in_group).values(summary=t.c.redacted_summary))
        # The facts are redacted here rather than kept twice: at most TIMELINE_LENGTH
        # lines per customer, read once per erasure.
        lines = await conn.execute(
            select(t.c.customer_id, t.c.event_id, t.c.facts).where(
                *in_group, t.c.facts.is_not(None)
            )
        )
        changed = [
            {"c": customer_id, "e": event_id, "redacted": kept}
            for customer_id, event_id, facts in lines
            if (kept := redacted(facts)) != facts
        ]
        if changed:
            await conn.execute(
                update(t)
                .where(
                    t.c.tenant_id == view.tenant_id,
                    t.c.customer_id == bindparam("c"),
                    t.c.event_id == bindparam("e"),
                )
                .values(facts=bindparam("redacted", type_=t.c.facts.type)),
                changed,
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

    def _statements(self, conn: AsyncConnection) -> WriteStatements:
        """This generation's statements for ``conn``'s dialect (ON CONFLICT is per dialect)."""
        statements = self._statements_by_dialect.get(conn.dialect.name)
        if statements is None:
            statements = self._build_statements(_insert(conn))
            self._statements_by_dialect[conn.dialect.name] = statements
        return statements

    def _build_statements(self, dialect_insert: Any) -> WriteStatements:
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
        return WriteStatements(
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
    return upsert_for(conn)
