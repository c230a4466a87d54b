"""The queries that read one generation's view: the API's, and the writer's look-ups.

Reads are the hot path (a view per screen): a customer that was never merged is
two primary-key-ordered queries, its row (with any redirect joined in) and its
timeline; on PostgreSQL, one statement. Statements are built once per dialect
(see ``_Statements``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BindParameter, and_, bindparam, func, literal_column, select
from sqlalchemy.dialects.postgresql import JSON, aggregate_order_by
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import Select
from sqlalchemy.sql.elements import Label
from sqlalchemy.sql.selectable import Subquery

from libs.platform.db import is_postgres
from services.customer360.domain.view import TIMELINE_LENGTH, CustomerView, Interaction
from services.customer360.read_model.tables import (
    Tables,
    interactions_of,
    newest_first,
    timeline_columns,
    view_of,
)

# Merge chains (A into B, later B into C) are followed this far, and no further,
# so that corrupt data (a cycle) cannot loop a reader or the projector.
MAX_MERGE_DEPTH = 10


@dataclass(frozen=True, slots=True)
class _Statements:
    """The reads every event or view runs, built once per generation and dialect.

    Values come as execution parameters (``bindparam``), never baked in:
    SQLAlchemy memoizes a statement's cache key on the statement object, so a
    reused one skips rebuilding the statement and its key on every call and finds
    its compiled form in the engine's cache at once.
    """

    # Parameters: tenant_id, customer_id.
    version_of: Select[Any]
    load: Select[Any]
    load_for_update: Select[Any]
    survivor_of: Select[Any]
    # Parameters: tenant_id, customer_id. The latest lines, newest first.
    timeline_latest: Select[Any]
    # PostgreSQL only: ``load`` and, in column ``timeline``, the customer's own latest
    # lines as a JSON array of [event_id, type, occurred_at, customer_id, summary].
    load_with_timeline: Select[Any] | None


class ViewQueries:
    def __init__(self, tables: Tables) -> None:
        self.tables = tables
        self._statements_by_dialect: dict[str, _Statements] = {}

    async def load(
        self, conn: AsyncConnection, tenant_id: str, customer_id: str, *, for_update: bool = False
    ) -> CustomerView | None:
        c = self.tables.customers
        query = select(c).where(c.c.tenant_id == tenant_id, c.c.customer_id == customer_id)
        if for_update:
            query = query.with_for_update()  # as in load_with_survivor
        row = (await conn.execute(query)).mappings().first()
        return view_of(row) if row is not None else None

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
            return view_of(row), row["survivor_id"]
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
                "facts": facts,
            }
            for event_id, type_, occurred_at, line_customer_id, summary, facts in row["timeline"]
        ]
        return view_of(row), row["survivor_id"], lines

    async def version_of(
        self, conn: AsyncConnection, tenant_id: str, customer_id: str
    ) -> int | None:
        # Polled by every ?min_version read until the projector catches up: prebuilt.
        version = await conn.scalar(
            self._statements(conn).version_of, {"tenant_id": tenant_id, "customer_id": customer_id}
        )
        return int(version) if version is not None else None

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
        m = self.tables.merges
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
        t = self.tables.timeline
        rows = await conn.execute(
            select(*timeline_columns(t))
            .where(t.c.tenant_id == tenant_id, t.c.customer_id.in_(ids))
            .order_by(*newest_first(t))
            .limit(TIMELINE_LENGTH)
        )
        return [dict(r) for r in rows.mappings()]

    async def interactions_of(
        self, conn: AsyncConnection, tenant_id: str, customer_ids: Iterable[str]
    ) -> dict[str, tuple[Interaction, ...]]:
        """Recent interactions of other customers (a survivor's duplicates)."""
        c = self.tables.customers
        rows = await conn.execute(
            select(c.c.customer_id, c.c.recent_interactions).where(
                c.c.tenant_id == tenant_id, c.c.customer_id.in_(list(customer_ids))
            )
        )
        return {r.customer_id: interactions_of(r.recent_interactions) for r in rows}

    # --- statements reused for every read -------------------------------------------------

    def _statements(self, conn: AsyncConnection) -> _Statements:
        statements = self._statements_by_dialect.get(conn.dialect.name)
        if statements is None:
            statements = self._build_statements(postgres=is_postgres(conn.engine))
            self._statements_by_dialect[conn.dialect.name] = statements
        return statements

    def _build_statements(self, *, postgres: bool) -> _Statements:
        c, t, m = self.tables.customers, self.tables.timeline, self.tables.merges
        tenant_id: BindParameter[str] = bindparam("tenant_id")
        customer_id: BindParameter[str] = bindparam("customer_id")
        load = (
            select(c, m.c.survivor_id)
            .select_from(
                c.outerjoin(
                    m, and_(m.c.tenant_id == c.c.tenant_id, m.c.duplicate_id == c.c.customer_id)
                )
            )
            .where(c.c.tenant_id == tenant_id, c.c.customer_id == customer_id)
        )
        latest = (
            select(*timeline_columns(t))
            .where(t.c.tenant_id == tenant_id, t.c.customer_id == customer_id)
            .order_by(*newest_first(t))
            .limit(TIMELINE_LENGTH)
        )
        return _Statements(
            version_of=select(c.c.version).where(
                c.c.tenant_id == tenant_id, c.c.customer_id == customer_id
            ),
            load=load,
            # Partitions of different topics (contacts, later pipeline...) for one
            # customer may be applied by different consumers at once: no lost update.
            load_for_update=load.with_for_update(of=c),
            survivor_of=select(m.c.survivor_id).where(
                m.c.tenant_id == tenant_id, m.c.duplicate_id == customer_id
            ),
            timeline_latest=latest,
            load_with_timeline=load.add_columns(
                _as_json_array(latest.add_columns(t.c.sequence).subquery("latest"))
            )
            if postgres
            else None,
        )


def _as_json_array(latest: Subquery) -> Label[Any]:
    """``latest``'s lines as one JSON array of [event_id, type, occurred_at, customer_id,
    summary, facts], in the timeline's order (PostgreSQL)."""
    line = func.json_build_array(
        latest.c.event_id,
        latest.c.type,
        latest.c.occurred_at,
        latest.c.customer_id,
        latest.c.summary,
        latest.c.facts,
    )
    lines = func.json_agg(aggregate_order_by(line, *newest_first(latest)))
    or_empty = func.coalesce(lines, literal_column("'[]'::json"), type_=JSON)
    return select(or_empty).scalar_subquery().label("timeline")
