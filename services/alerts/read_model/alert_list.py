"""Churn alerts as users work them: one row per alert, its status and who closed it.

Written in the same transaction as the alert's events (opened and closed by the
projector or the sweep, acknowledged, resolved or dismissed through the API).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Column, Index, Integer, MetaData, String, Table, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from libs.events.catalog.alerts import AlertOpened
from libs.platform.db import JsonDocument, UtcDateTime
from libs.platform.db import upsert_into as insert

metadata = MetaData()

alerts_table = Table(
    "churn_alerts",
    metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("alert_id", String(36), primary_key=True),
    Column("customer_id", String(64), nullable=False),
    Column("owner_id", String(64), nullable=True),
    Column("level", String(8), nullable=False),
    Column("score", Integer, nullable=False),
    Column("reasons", JsonDocument, nullable=False),
    # open, acknowledged, resolved, dismissed, left_risk_level
    Column("status", String(16), nullable=False),
    Column("opened_at", UtcDateTime, nullable=False),
    Column("closed_at", UtcDateTime, nullable=True),
    Column("closed_by", String(64), nullable=True),
    Column("reason", String(500), nullable=False),
    Index("ix_churn_alerts_status", "tenant_id", "status", "opened_at"),
)


async def alert_opened(conn: AsyncConnection, tenant_id: str, event: Any, at: datetime) -> None:
    await alerts_opened(conn, tenant_id, [event], at)


async def alerts_opened(
    conn: AsyncConnection, tenant_id: str, events: Sequence[AlertOpened], at: datetime
) -> None:
    """One row per alert opened, in one statement (an alert known already stays)."""
    if not events:
        return
    await conn.execute(
        insert(conn, alerts_table).on_conflict_do_nothing(),
        [
            {
                "tenant_id": tenant_id,
                "alert_id": event.alert_id,
                "customer_id": event.customer_id,
                "owner_id": event.owner_id,
                "level": event.level,
                "score": event.score,
                "reasons": [r.model_dump(mode="json") for r in event.reasons],
                "status": "open",
                "opened_at": at,
                "reason": "",
                "closed_at": None,
                "closed_by": None,
            }
            for event in events
        ],
    )


async def alert_status(
    conn: AsyncConnection,
    tenant_id: str,
    alert_id: str,
    status: str,
    at: datetime,
    by: str | None = None,
    reason: str = "",
) -> None:
    closing = status != "acknowledged"
    await conn.execute(
        update(alerts_table)
        .where(alerts_table.c.tenant_id == tenant_id, alerts_table.c.alert_id == alert_id)
        .values(
            status=status,
            closed_at=at if closing else None,
            closed_by=by if closing else None,
            reason=reason[:500],
        )
    )


async def alert(conn: AsyncConnection, tenant_id: str, alert_id: str) -> Any | None:
    return (
        await conn.execute(
            select(alerts_table).where(
                alerts_table.c.tenant_id == tenant_id, alerts_table.c.alert_id == alert_id
            )
        )
    ).one_or_none()


async def alerts_by_id(
    conn: AsyncConnection, tenant_id: str, alert_ids: Iterable[str]
) -> dict[str, Any]:
    wanted = sorted(set(alert_ids))
    if not wanted:
        return {}
    rows = await conn.execute(
        select(alerts_table).where(
            alerts_table.c.tenant_id == tenant_id, alerts_table.c.alert_id.in_(wanted)
        )
    )
    return {r.alert_id: r for r in rows}


async def find_alerts(
    conn: AsyncConnection, tenant_id: str, status: str | None, owner_id: str | None, limit: int
) -> list[Any]:
    query = select(alerts_table).where(alerts_table.c.tenant_id == tenant_id)
    if status is not None:
        query = query.where(alerts_table.c.status == status)
    if owner_id is not None:
        query = query.where(alerts_table.c.owner_id == owner_id)
    query = query.order_by(alerts_table.c.opened_at.desc(), alerts_table.c.alert_id).limit(limit)
    return list(await conn.execute(query))


async def dismissals(conn: AsyncConnection, tenant_id: str) -> dict[str, int]:
    """Dismissed alerts by their reason: the users' feedback on the rules."""
    rows = await conn.execute(
        select(alerts_table.c.reason, func.count())
        .where(alerts_table.c.tenant_id == tenant_id, alerts_table.c.status == "dismissed")
        .group_by(alerts_table.c.reason)
    )
    return {str(reason): int(n) for reason, n in rows}
