"""The pipeline's own query tables, written in the same transaction as the events.

* ``pipeline_orders`` answers a customer's orders and purchase figures;
  ``pipeline_order_external_ids`` holds each tenant's external ids once (the unique
  key that makes two concurrent syncs of one ERP order one order).
* The customers the pipeline knows (ids only: no name, no contact data) are the
  table of the ``KnownCustomers`` projection, fed by ``crm.contacts.events``.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from libs.events.catalog.contacts import (
    CustomerMerged,
    CustomerMergedInto,
    CustomerRegistered,
    PersonalDataErased,
)
from libs.events.consumer import ReceivedEvent
from libs.events.kafka import service_topic
from libs.events.projection import Projection
from libs.platform.db import UtcDateTime
from libs.platform.errors import Unprocessable
from services.pipeline.domain.orders import Order

metadata = MetaData()

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


async def create_tables(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)


def upsert_for(conn: AsyncConnection) -> Any:
    return pg_insert if conn.dialect.name == "postgresql" else sqlite_insert


# --- customers -------------------------------------------------------------------------


class KnownCustomers(Projection):
    """Which customers exist in which tenant, and whom a merged one now counts for.

    Fed by the contacts topic; the write path also records a customer it had to ask
    contacts about (replication lag), so both insert idempotently.
    """

    name = "pipeline_customers"

    def __init__(self, generation: int = 1) -> None:
        super().__init__(generation)
        # What else erasing a customer must forget (the leads converted into it).
        self.on_erased: Callable[[AsyncConnection, str, str], Awaitable[None]] | None = None
        self.topics = [service_topic("contacts")]
        self.table = Table(
            self.table_name("known"),
            self.metadata,
            Column("tenant_id", String(64), primary_key=True),
            Column("customer_id", String(64), primary_key=True),
            # Set once merged: orders and deals of this id count for the survivor.
            Column("survivor_id", String(64)),
            Column("erased_at", UtcDateTime),
            Column("learnt_at", UtcDateTime, nullable=False),
        )

    async def apply(self, conn: AsyncConnection, event: ReceivedEvent) -> None:
        tenant_id = event.envelope.tenantid
        match event.event:
            case CustomerRegistered() | CustomerMerged():
                await self.learn(conn, tenant_id, event.event.customer_id)
            case CustomerMergedInto():
                await self.learn(conn, tenant_id, event.event.survivor_id)
                await self.learn(
                    conn, tenant_id, event.event.customer_id, survivor_id=event.event.survivor_id
                )
            case PersonalDataErased():
                await self.learn(conn, tenant_id, event.event.customer_id)
                await conn.execute(
                    update(self.table)
                    .where(
                        self.table.c.tenant_id == tenant_id,
                        self.table.c.customer_id == event.event.customer_id,
                    )
                    .values(erased_at=event.event.erased_at)
                )
                if self.on_erased is not None:
                    await self.on_erased(conn, tenant_id, event.event.customer_id)

    async def learn(
        self,
        conn: AsyncConnection,
        tenant_id: str,
        customer_id: str,
        *,
        survivor_id: str | None = None,
    ) -> None:
        row = {
            "tenant_id": tenant_id,
            "customer_id": customer_id,
            "survivor_id": survivor_id,
            "learnt_at": datetime.now(UTC),
        }
        statement = upsert_for(conn)(self.table).values(row)
        key = [self.table.c.tenant_id, self.table.c.customer_id]
        if survivor_id is None:
            await conn.execute(statement.on_conflict_do_nothing(index_elements=key))
        else:
            await conn.execute(
                statement.on_conflict_do_update(
                    index_elements=key, set_={"survivor_id": survivor_id}
                )
            )

    async def resolve(self, conn: AsyncConnection, tenant_id: str, customer_id: str) -> str | None:
        """The customer ``customer_id`` stands for now (its survivor once merged), or None
        when the pipeline has not (yet) heard of it in this tenant."""
        current, seen = customer_id, set()
        while current not in seen:
            seen.add(current)
            survivor = (
                await conn.execute(
                    select(self.table.c.survivor_id).where(
                        self.table.c.tenant_id == tenant_id, self.table.c.customer_id == current
                    )
                )
            ).first()
            if survivor is None:
                return None if current == customer_id else current
            if survivor[0] is None:
                return current
            current = survivor[0]
        return current

    async def resolve_many(
        self, conn: AsyncConnection, tenant_id: str, customer_ids: Sequence[str]
    ) -> dict[str, str]:
        """``resolve`` for many ids at once (imports): the known ones only."""
        found: dict[str, str] = {}
        for start in range(0, len(customer_ids), 1000):
            chunk = list(customer_ids[start : start + 1000])
            rows = await conn.execute(
                select(self.table.c.customer_id, self.table.c.survivor_id).where(
                    self.table.c.tenant_id == tenant_id, self.table.c.customer_id.in_(chunk)
                )
            )
            for customer_id, survivor_id in rows:
                if survivor_id is None:
                    found[customer_id] = customer_id
                else:  # merged: follow the chain the careful way
                    resolved = await self.resolve(conn, tenant_id, customer_id)
                    if resolved is not None:
                        found[customer_id] = resolved
        return found

    async def records_of(
        self, conn: AsyncConnection, tenant_id: str, customer_id: str
    ) -> list[str]:
        """The customer and every record merged into it (their orders are its orders)."""
        rows = await conn.execute(
            select(self.table.c.customer_id).where(
                self.table.c.tenant_id == tenant_id, self.table.c.survivor_id == customer_id
            )
        )
        return [customer_id, *sorted(r[0] for r in rows)]


# --- orders ----------------------------------------------------------------------------


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


# --- paging ----------------------------------------------------------------------------


def encode_cursor(at: datetime, item_id: str) -> str:
    raw = json.dumps([at.isoformat(), item_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The position after which the next page starts; 422 for anything not ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, item_id = json.loads(raw)
        position = datetime.fromisoformat(at)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise Unprocessable("cursor", "is not a cursor this service returned") from None
    if position.tzinfo is None or not isinstance(item_id, str):
        raise Unprocessable("cursor", "is not a cursor this service returned")
    return position, item_id
