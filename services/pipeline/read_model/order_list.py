"""Orders as lists and figures answer them, written in the same transaction as the events.

* ``pipeline_orders`` answers a customer's orders and purchase figures;
  ``pipeline_order_external_ids`` holds each tenant's external ids once (the unique
  key that makes two concurrent syncs of one ERP order one order).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    String,
    Table,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from libs.platform.db import UtcDateTime
from services.pipeline.domain.orders import Order
from services.pipeline.read_model import metadata

orders = Table(
    "pipeline_orders",
    metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("order_id", String(64), primary_key=True),
    Column("customer_id", String(64), nullable=False),
    Column("external_id", String(64)),
    Column("currency", String(3), nullable=False),
    Column("total", BigInteger, nullable=False),
    Column("refunded", BigInteger, nullable=False),
    Column("status", String(24), nullable=False),
    Column("placed_at", UtcDateTime, nullable=False),
    Column("line_count", Integer, nullable=False),
    Column("version", Integer, nullable=False),
)
Index("ix_pipeline_orders_customer", orders.c.tenant_id, orders.c.customer_id, orders.c.placed_at)

order_external_ids = Table(
    "pipeline_order_external_ids",
    metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("external_id", String(64), primary_key=True),
    Column("order_id", String(64), nullable=False),
)


def order_row(tenant_id: str, order: Order) -> dict[str, Any]:
    return {
        "tenant_id": tenant_id,
        "order_id": order.id,
        "customer_id": order.customer_id,
        "external_id": order.external_id,
        "currency": order.currency,
        "total": order.total,
        "refunded": order.refunded,
        "status": order.status,
        "placed_at": order.placed_at,
        "line_count": len(order.lines),
        "version": order.version,
    }


async def claim_external_id(
    conn: AsyncConnection, tenant_id: str, external_id: str, order_id: str
) -> None:
    """Raises IntegrityError when another order holds the external id (a racing sync)."""
    await conn.execute(
        insert(order_external_ids).values(
            tenant_id=tenant_id, external_id=external_id, order_id=order_id
        )
    )


async def order_of_external_id(
    conn: AsyncConnection, tenant_id: str, external_id: str
) -> str | None:
    found = await conn.execute(
        select(order_external_ids.c.order_id).where(
            order_external_ids.c.tenant_id == tenant_id,
            order_external_ids.c.external_id == external_id,
        )
    )
    return found.scalar_one_or_none()


async def save_order(conn: AsyncConnection, tenant_id: str, order: Order, *, new: bool) -> None:
    row = order_row(tenant_id, order)
    if new:
        await conn.execute(insert(orders).values(row))
    else:
        await conn.execute(
            update(orders)
            .where(orders.c.tenant_id == tenant_id, orders.c.order_id == order.id)
            .values(row)
        )


ORDER_COLUMNS = (
    orders.c.order_id,
    orders.c.customer_id,
    orders.c.external_id,
    orders.c.currency,
    orders.c.total,
    orders.c.refunded,
    orders.c.status,
    orders.c.placed_at,
    orders.c.version,
)


def order_summary(row: Any) -> dict[str, Any]:
    return {
        "id": row.order_id,
        "customer_id": row.customer_id,
        "external_id": row.external_id,
        "currency": row.currency,
        "total": int(row.total),
        "refunded": int(row.refunded),
        "status": row.status,
        "placed_at": row.placed_at.isoformat(),
        "version": int(row.version),
    }


async def orders_of(
    conn: AsyncConnection,
    tenant_id: str,
    records: Sequence[str],
    *,
    before: tuple[datetime, str] | None,
    limit: int,
) -> list[dict[str, Any]]:
    """The customer's orders, newest placement first, after the cursor ``before``."""
    query = select(*ORDER_COLUMNS).where(
        orders.c.tenant_id == tenant_id, orders.c.customer_id.in_(records)
    )
    if before is not None:
        at, order_id = before
        query = query.where(
            or_(
                orders.c.placed_at < at,
                (orders.c.placed_at == at) & (orders.c.order_id < order_id),
            )
        )
    query = query.order_by(orders.c.placed_at.desc(), orders.c.order_id.desc()).limit(limit)
    return [order_summary(r) for r in await conn.execute(query)]


@dataclass(frozen=True, slots=True)
class Spent:
    currency: str
    order_count: int
    total_spent: int
    average_order_value: int


@dataclass(frozen=True, slots=True)
class PurchaseFigures:
    order_count: int
    first_order_at: datetime | None
    last_order_at: datetime | None
    mean_days_between_orders: float | None
    # Money never adds up across currencies: one line per currency.
    spent: list[Spent]


async def purchase_figures(
    conn: AsyncConnection, tenant_id: str, records: Sequence[str]
) -> PurchaseFigures:
    """Over the orders that happened (cancelled ones did not), net of refunds."""
    rows = (
        await conn.execute(
            select(
                orders.c.currency,
                func.count(),
                func.sum(orders.c.total - orders.c.refunded),
                func.min(orders.c.placed_at),
                func.max(orders.c.placed_at),
            )
            .where(
                orders.c.tenant_id == tenant_id,
                orders.c.customer_id.in_(records),
                orders.c.status != "cancelled",
            )
            .group_by(orders.c.currency)
            .order_by(orders.c.currency)
        )
    ).all()
    spent = [
        Spent(
            currency=currency,
            order_count=int(count),
            total_spent=int(net),
            # Rounded half up to the minor unit: an average has no smaller coin.
            average_order_value=(int(net) * 2 + int(count)) // (2 * int(count)),
        )
        for currency, count, net, _, _ in rows
    ]
    count = sum(s.order_count for s in spent)
    first = min((r[3] for r in rows), default=None)
    last = max((r[4] for r in rows), default=None)
    mean_days = None
    if count > 1 and first is not None and last is not None:
        mean_days = round((last - first).total_seconds() / 86400 / (count - 1), 2)
    return PurchaseFigures(count, first, last, mean_days, spent)
