"""The service's own tables (migrated, not per generation): the tenants' settings, the
saved segments with the version of their stream, each segment's members as last
evaluated (so entering and leaving are announced once), and its member count history.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    delete,
    select,
    tuple_,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from libs.events.catalog.analytics import AnalyticsSettings, SegmentFilter
from libs.platform.db import JsonDocument, UtcDateTime
from libs.platform.db import upsert_into as insert

metadata = MetaData()

settings_table = Table(
    "analytics_settings",
    metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("settings", JsonDocument, nullable=False),
    Column("version", Integer, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

segments = Table(
    "analytics_segments",
    metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("name", String(64), primary_key=True),
    # None for a built-in segment (its row only keeps its stream's version).
    Column("filter", JsonDocument, nullable=True),
    Column("version", Integer, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("updated_by", String(64), nullable=True),
)

members = Table(
    "analytics_segment_members",
    metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("segment", String(64), primary_key=True),
    Column("customer_id", String(64), primary_key=True),
    Column("since", UtcDateTime, nullable=False),
)

counts = Table(
    "analytics_segment_counts",
    metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("segment", String(64), primary_key=True),
    Column("at", UtcDateTime, primary_key=True),
    Column("members", Integer, nullable=False),
    Column("entered", Integer, nullable=False),
    Column("left", Integer, nullable=False),
    Index("ix_analytics_segment_counts_at", "tenant_id", "segment", "at"),
)


async def settings_of(conn: AsyncConnection, tenant_id: str) -> tuple[AnalyticsSettings, int]:
    row = (
        await conn.execute(
            select(settings_table.c.settings, settings_table.c.version).where(
                settings_table.c.tenant_id == tenant_id
            )
        )
    ).one_or_none()
    if row is None:
        return AnalyticsSettings(), 0
    return AnalyticsSettings.model_validate(row.settings), int(row.version)


async def save_settings(
    conn: AsyncConnection, tenant_id: str, settings: AnalyticsSettings, version: int, at: datetime
) -> None:
    stmt = insert(conn, settings_table).values(
        tenant_id=tenant_id,
        settings=settings.model_dump(mode="json"),
        version=version,
        updated_at=at,
    )
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["tenant_id"],
            set_={"settings": stmt.excluded.settings, "version": version, "updated_at": at},
        )
    )


async def segment(
    conn: AsyncConnection, tenant_id: str, name: str, *, lock: bool = False
) -> Any | None:
    query = select(segments).where(segments.c.tenant_id == tenant_id, segments.c.name == name)
    if lock and conn.dialect.name == "postgresql":
        query = query.with_for_update()
    return (await conn.execute(query)).one_or_none()


def filter_of(row: Any) -> SegmentFilter | None:
    return SegmentFilter.model_validate(row.filter) if row.filter is not None else None


async def saved_segments(conn: AsyncConnection, tenant_id: str) -> list[Any]:
    return list(
        await conn.execute(
            select(segments)
            .where(segments.c.tenant_id == tenant_id, segments.c.filter.is_not(None))
            .order_by(segments.c.name)
        )
    )


async def save_segment(
    conn: AsyncConnection,
    tenant_id: str,
    name: str,
    rule: SegmentFilter | None,
    version: int,
    at: datetime,
    by: str | None,
) -> None:
    values = {
        "filter": rule.model_dump(mode="json") if rule is not None else None,
        "version": version,
        "updated_at": at,
        "updated_by": by,
    }
    stmt = insert(conn, segments).values(tenant_id=tenant_id, name=name, **values)
    if rule is None:  # a built-in's row: only its version moves
        values = {"version": version, "updated_at": at}
    await conn.execute(
        stmt.on_conflict_do_update(index_elements=["tenant_id", "name"], set_=values)
    )


async def members_of(conn: AsyncConnection, tenant_id: str, name: str) -> set[str]:
    rows = await conn.execute(
        select(members.c.customer_id).where(
            members.c.tenant_id == tenant_id, members.c.segment == name
        )
    )
    return {r[0] for r in rows}


async def record_changes(
    conn: AsyncConnection,
    tenant_id: str,
    name: str,
    entered: list[str],
    left: list[str],
    total: int,
    at: datetime,
) -> None:
    if entered:
        await conn.execute(
            insert(conn, members).on_conflict_do_nothing(),
            [
                {"tenant_id": tenant_id, "segment": name, "customer_id": c, "since": at}
                for c in entered
            ],
        )
    for start in range(0, len(left), 500):
        chunk = left[start : start + 500]
        await conn.execute(
            delete(members).where(
                members.c.tenant_id == tenant_id,
                members.c.segment == name,
                tuple_(members.c.customer_id).in_([(c,) for c in chunk]),
            )
        )
    stmt = insert(conn, counts).values(
        tenant_id=tenant_id,
        segment=name,
        at=at,
        members=total,
        entered=len(entered),
        left=len(left),
    )
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["tenant_id", "segment", "at"],
            set_={"members": total, "entered": stmt.excluded.entered, "left": stmt.excluded.left},
        )
    )


async def count_history(
    conn: AsyncConnection, tenant_id: str, name: str, limit: int = 100
) -> list[dict[str, Any]]:
    rows = await conn.execute(
        select(counts.c.at, counts.c.members, counts.c.entered, counts.c.left)
        .where(counts.c.tenant_id == tenant_id, counts.c.segment == name)
        .order_by(counts.c.at.desc())
        .limit(limit)
    )
    return [
        {"at": at.isoformat(), "members": m, "entered": e, "left": lft} for at, m, e, lft in rows
    ]
