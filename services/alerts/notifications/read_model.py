"""The notification tables: subscriptions, and one delivery per (subscription, event).

``webhook_subscriptions``: the tenant's subscriptions with their secret (it signs
every delivery, so it is kept, never shown again), status and the failed attempts
in a row. ``webhook_deliveries``: the delivery log and the queue at once. Its key,
(tenant, subscription, event id), makes an event redelivered by the broker land on
the row it already has; a pending row is what survives a restart of the worker.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import Column, Index, Integer, MetaData, String, Table, and_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from libs.platform.db import JsonDocument, UtcDateTime
from libs.platform.db import upsert_into as insert

metadata = MetaData()
# Attempts kept per delivery in its log (the counter keeps counting past it).
LOGGED_ATTEMPTS = 20

subscriptions = Table(
    "webhook_subscriptions",
    metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("subscription_id", String(36), primary_key=True),
    Column("channel", String(8), nullable=False),
    Column("url", String(2048), nullable=False),
    Column("secret", String(128), nullable=False),
    Column("event_types", JsonDocument, nullable=False),
    Column("content_mode", String(16), nullable=False),
    Column("description", String(500), nullable=False),
    # active, disabled, deleted (kept so its deliveries' log stays readable to support)
    Column("status", String(16), nullable=False),
    Column("consecutive_failures", Integer, nullable=False),
    Column("disabled_reason", String(200), nullable=True),
    Column("version", Integer, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Index("ix_webhook_subscriptions_status", "tenant_id", "status"),
)

deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("subscription_id", String(36), primary_key=True),
    Column("event_id", String(64), primary_key=True),
    Column("event_type", String(128), nullable=False),
    # The structured CloudEvent, resent as it is on every attempt.
    Column("document", JsonDocument, nullable=False),
    # pending, delivered, failed (given up), cancelled (its subscription was deleted)
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    # When a worker may take it next: due, or the end of a worker's lease on it.
    Column("next_attempt_at", UtcDateTime, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("last_attempt_at", UtcDateTime, nullable=True),
    Column("delivered_at", UtcDateTime, nullable=True),
    Column("last_status_code", Integer, nullable=True),
    Column("last_error", String(500), nullable=True),
    Column("log", JsonDocument, nullable=False),
    Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
    Index("ix_webhook_deliveries_log", "tenant_id", "subscription_id", "created_at"),
)


def _where(tenant_id: str, subscription_id: str) -> Any:
    return and_(
        subscriptions.c.tenant_id == tenant_id,
        subscriptions.c.subscription_id == subscription_id,
    )


async def subscription(
    conn: AsyncConnection, tenant_id: str, subscription_id: str, *, lock: bool = False
) -> Any | None:
    query = select(subscriptions).where(_where(tenant_id, subscription_id))
    if lock:
        query = query.with_for_update()
    return (await conn.execute(query)).one_or_none()


async def tenant_subscriptions(conn: AsyncConnection, tenant_id: str) -> list[Any]:
    query = (
        select(subscriptions)
        .where(subscriptions.c.tenant_id == tenant_id, subscriptions.c.status != "deleted")
        .order_by(subscriptions.c.created_at, subscriptions.c.subscription_id)
    )
    return list(await conn.execute(query))


async def active_subscriptions(conn: AsyncConnection, tenant_id: str) -> list[Any]:
    query = select(subscriptions).where(
        subscriptions.c.tenant_id == tenant_id, subscriptions.c.status == "active"
    )
    return list(await conn.execute(query))


async def add_subscription(conn: AsyncConnection, **values: Any) -> None:
    await conn.execute(insert(conn, subscriptions).values(**values))


async def change_subscription(
    conn: AsyncConnection, tenant_id: str, subscription_id: str, **values: Any
) -> None:
    await conn.execute(
        update(subscriptions).where(_where(tenant_id, subscription_id)).values(**values)
    )


async def enqueue(
    conn: AsyncConnection,
    tenant_id: str,
    subscription_id: str,
    document: dict[str, Any],
    now: datetime,
) -> None:
    """One delivery per (subscription, event): a redelivered event finds its row."""
    await conn.execute(
        insert(conn, deliveries)
        .values(
            tenant_id=tenant_id,
            subscription_id=subscription_id,
            event_id=str(document["id"])[:64],
            event_type=str(document["type"])[:128],
            document=document,
            status="pending",
            attempts=0,
            next_attempt_at=now,
            created_at=now,
            log=[],
        )
        .on_conflict_do_nothing()
    )


def _delivery_key(tenant_id: str, subscription_id: str, event_id: str) -> Any:
    return and_(
        deliveries.c.tenant_id == tenant_id,
        deliveries.c.subscription_id == subscription_id,
        deliveries.c.event_id == event_id,
    )


async def claim_due(
    conn: AsyncConnection, now: datetime, lease_until: datetime, limit: int
) -> list[Any]:
    """Take up to ``limit`` due deliveries of active subscriptions, each with one more
    attempt counted and leased until ``lease_until``: a worker that dies mid-send
    leaves them to be taken again when the lease ends (at least once, never lost).
    Concurrent workers skip each other's rows."""
    query = (
        select(
            deliveries.c.tenant_id,
            deliveries.c.subscription_id,
            deliveries.c.event_id,
            deliveries.c.event_type,
            deliveries.c.document,
            deliveries.c.attempts,
            subscriptions.c.channel,
            subscriptions.c.url,
            subscriptions.c.secret,
            subscriptions.c.content_mode,
        )
        .join(
            subscriptions,
            and_(
                subscriptions.c.tenant_id == deliveries.c.tenant_id,
                subscriptions.c.subscription_id == deliveries.c.subscription_id,
            ),
        )
        .where(
            deliveries.c.status == "pending",
            deliveries.c.next_attempt_at <= now,
            subscriptions.c.status == "active",
        )
        .order_by(deliveries.c.next_attempt_at)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(of=deliveries, skip_locked=True)
    rows = list(await conn.execute(query))
    for row in rows:
        await conn.execute(
            update(deliveries)
            .where(_delivery_key(row.tenant_id, row.subscription_id, row.event_id))
            .values(attempts=row.attempts + 1, next_attempt_at=lease_until, last_attempt_at=now)
        )
    return rows


async def delivery(
    conn: AsyncConnection, tenant_id: str, subscription_id: str, event_id: str
) -> Any | None:
    query = select(deliveries).where(_delivery_key(tenant_id, subscription_id, event_id))
    return (await conn.execute(query.with_for_update())).one_or_none()


async def record_attempt(
    conn: AsyncConnection,
    row: Any,
    *,
    status: str,
    next_attempt_at: datetime | None,
    at: datetime,
    status_code: int | None,
    error: str | None,
    duration_ms: int,
) -> None:
    entry = {
        "attempt": row.attempts,
        "at": at.isoformat(),
        "status_code": status_code,
        "error": error,
        "duration_ms": duration_ms,
    }
    await conn.execute(
        update(deliveries)
        .where(_delivery_key(row.tenant_id, row.subscription_id, row.event_id))
        .values(
            status=status,
            next_attempt_at=next_attempt_at,
            delivered_at=at if status == "delivered" else None,
            last_status_code=status_code,
            last_error=error[:500] if error else None,
            log=[*row.log, entry][-LOGGED_ATTEMPTS:],
        )
    )


async def resume(
    conn: AsyncConnection, tenant_id: str, subscription_id: str, now: datetime
) -> None:
    """Enabled again: its pending deliveries are due at once."""
    await conn.execute(
        update(deliveries)
        .where(
            deliveries.c.tenant_id == tenant_id,
            deliveries.c.subscription_id == subscription_id,
            deliveries.c.status == "pending",
        )
        .values(next_attempt_at=now)
    )


async def cancel_pending(conn: AsyncConnection, tenant_id: str, subscription_id: str) -> None:
    await conn.execute(
        update(deliveries)
        .where(
            deliveries.c.tenant_id == tenant_id,
            deliveries.c.subscription_id == subscription_id,
            deliveries.c.status == "pending",
        )
        .values(status="cancelled", next_attempt_at=None)
    )


async def redact_deliveries(
    conn: AsyncConnection,
    tenant_id: str,
    subject_id: str,
    redact: Callable[[dict[str, Any]], dict[str, Any]],
) -> None:
    """Rewrite the stored document of every delivery, sent or not, of an event whose
    partition key is ``subject_id`` (the tenant's log, scanned once per erasure)."""
    rows = await conn.execute(
        select(deliveries.c.subscription_id, deliveries.c.event_id, deliveries.c.document).where(
            deliveries.c.tenant_id == tenant_id,
            deliveries.c.document["partitionkey"].as_string() == subject_id,
        )
    )
    for row in rows.all():
        document = redact(row.document)
        if document != row.document:
            await conn.execute(
                update(deliveries)
                .where(_delivery_key(tenant_id, row.subscription_id, row.event_id))
                .values(document=document)
            )


async def delivery_log(
    conn: AsyncConnection,
    tenant_id: str,
    subscription_id: str,
    status: str | None,
    limit: int,
    offset: int,
) -> list[Any]:
    """Newest first."""
    query = select(deliveries).where(
        deliveries.c.tenant_id == tenant_id, deliveries.c.subscription_id == subscription_id
    )
    if status is not None:
        query = query.where(deliveries.c.status == status)
    query = query.order_by(deliveries.c.created_at.desc(), deliveries.c.event_id)
    return list(await conn.execute(query.limit(limit).offset(offset)))
