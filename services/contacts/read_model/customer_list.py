"""The contacts service's own query tables, written in the same transaction as the events.

Why in the write transaction rather than from Kafka (docs/decisions/0003): duplicate
detection must see every committed registration, and a caller must find the
customer it just registered; a projection that lags by even a second breaks both.
The cross-service 360 view is built from the topic instead.

Tables (all keyed by tenant first: no query here is ever without a tenant):

* ``contacts_customers``: one row per customer, the current profile as JSON plus
  the columns lists filter and sort on, and ``search_text`` (name, pinyin full and
  initials, email, phone) that ``q`` matches. ``survivor_id`` is set on a merged
  duplicate and always names the final survivor (chains are collapsed on merge),
  so a duplicate's id resolves in one lookup.
* ``contacts_customer_tags``: (tag, customer) for the tag filter.
* ``contacts_identities``: normalised emails and phones held by live customers,
  for duplicate detection. A merged duplicate's identities move to its survivor;
  an erased customer's are deleted.
* ``contacts_import_runs``: one row per CSV import (counts only: no personal data).

Who reads and writes them beside this module, one concern each: ``customer_rows`` (a
customer as its row keeps it), ``customer_search`` (``GET /customers``),
``write_locks`` (the advisory locks that make duplicate detection race-free) and
``planner`` (PostgreSQL's planner kept right around bulk imports).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    delete,
    insert,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from libs.platform.db import JsonDocument, UtcDateTime
from services.contacts.domain import Customer
from services.contacts.read_model.customer_rows import row_of

metadata = MetaData()

customers = Table(
    "contacts_customers",
    metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("customer_id", String(64), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("name", Text, nullable=False),
    Column("email", Text),
    Column("phone", String(32)),
    Column("owner_id", String(64)),
    Column("registered_at", UtcDateTime, nullable=False),
    Column("version", Integer, nullable=False),
    Column("survivor_id", String(64)),
    Column("erased", Boolean, nullable=False),
    Column("search_text", Text, nullable=False),
    Column("profile", JsonDocument, nullable=False),
)
# The list's order (newest customer first, id as tie-breaker) is this index's order.
Index(
    "ix_contacts_customers_listing",
    customers.c.tenant_id,
    customers.c.registered_at,
    customers.c.customer_id,
)
Index("ix_contacts_customers_owner", customers.c.tenant_id, customers.c.owner_id)
Index("ix_contacts_customers_survivor", customers.c.tenant_id, customers.c.survivor_id)

customer_tags = Table(
    "contacts_customer_tags",
    metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("tag", String(64), primary_key=True),
    Column("customer_id", String(64), primary_key=True),
)

identities = Table(
    "contacts_identities",
    metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("kind", String(8), primary_key=True),  # "email" or "phone"
    Column("value", String(320), primary_key=True),
    Column("customer_id", String(64), primary_key=True),
)
Index("ix_contacts_identities_customer", identities.c.tenant_id, identities.c.customer_id)

import_runs = Table(
    "contacts_import_runs",
    metadata,
    Column("import_id", String(36), primary_key=True),
    Column("tenant_id", String(64), nullable=False),
    Column("by", String(64), nullable=False),
    Column("file_sha256", String(64), nullable=False),
    Column("started_at", UtcDateTime, nullable=False),
    Column("finished_at", UtcDateTime, nullable=False),
    Column("rows", Integer, nullable=False),
    Column("created", Integer, nullable=False),
    Column("duplicates", Integer, nullable=False),
    Column("errors", Integer, nullable=False),
)

Identity = tuple[str, str]  # ("email" | "phone", normalised value)


# --- what a row holds ---------------------------------------------------------------


def identities_of(email: str | None, phone: str | None) -> list[Identity]:
    """The identities a customer with this email and phone claims, in lock order."""
    found: list[Identity] = []
    if email:
        found.append(("email", email.lower()))
    if phone:
        found.append(("phone", phone))
    return sorted(found)


# --- writes (always inside the caller's transaction) ---------------------------------


async def insert_customers(conn: AsyncConnection, registered: Sequence[Customer]) -> None:
    """Rows, tags and identities of newly registered customers (one or a whole batch)."""
    if not registered:
        return
    await conn.execute(insert(customers), [row_of(c) for c in registered])
    tag_rows = [
        {"tenant_id": c.tenant_id, "tag": tag, "customer_id": c.id}
        for c in registered
        for tag in c.tags
    ]
    if tag_rows:
        await conn.execute(insert(customer_tags), tag_rows)
    identity_rows = [
        {"tenant_id": c.tenant_id, "kind": kind, "value": value, "customer_id": c.id}
        for c in registered
        for kind, value in identities_of(c.email, c.phone)
    ]
    if identity_rows:
        await conn.execute(insert(identities), identity_rows)


async def update_customer(conn: AsyncConnection, before: Customer, after: Customer) -> None:
    """Bring the customer's row, tags and identities from ``before`` to ``after``."""
    tenant_id, customer_id = after.tenant_id, after.id
    row = row_of(after)
    del row["tenant_id"], row["customer_id"]
    await conn.execute(
        update(customers)
        .where(customers.c.tenant_id == tenant_id, customers.c.customer_id == customer_id)
        .values(**row)
    )
    live = after.merged_into is None and not after.erased
    removed_tags = set(before.tags) - set(after.tags) if live else set(before.tags)
    added_tags = set(after.tags) - set(before.tags) if live else set()
    if removed_tags:
        await conn.execute(
            delete(customer_tags).where(
                customer_tags.c.tenant_id == tenant_id,
                customer_tags.c.customer_id == customer_id,
                customer_tags.c.tag.in_(sorted(removed_tags)),
            )
        )
    if added_tags:
        await conn.execute(
            insert(customer_tags),
            [{"tenant_id": tenant_id, "tag": t, "customer_id": customer_id} for t in added_tags],
        )
    if after.erased:
        # Every identity goes, absorbed ones included: they are the person's too.
        await conn.execute(
            delete(identities).where(
                identities.c.tenant_id == tenant_id, identities.c.customer_id == customer_id
            )
        )
        return
    old = set(identities_of(before.email, before.phone))
    new = set(identities_of(after.email, after.phone))
    if old - new:
        await conn.execute(
            delete(identities).where(
                identities.c.tenant_id == tenant_id,
                identities.c.customer_id == customer_id,
                tuple_(identities.c.kind, identities.c.value).in_(sorted(old - new)),
            )
        )
    await _claim(conn, tenant_id, customer_id, sorted(new - old))


async def record_merge(
    conn: AsyncConnection, tenant_id: str, survivor_id: str, duplicate_id: str
) -> None:
    """The duplicate (and whatever it had absorbed) now resolves to the survivor."""
    await conn.execute(
        update(customers)
        .where(
            customers.c.tenant_id == tenant_id,
            or_(customers.c.customer_id == duplicate_id, customers.c.survivor_id == duplicate_id),
        )
        .values(survivor_id=survivor_id)
    )
    await conn.execute(
        delete(customer_tags).where(
            customer_tags.c.tenant_id == tenant_id, customer_tags.c.customer_id == duplicate_id
        )
    )
    # The duplicate's email and phone still identify the person: a later registration
    # with them is a duplicate of the survivor.
    moved = [
        (kind, value)
        for kind, value in await conn.execute(
            select(identities.c.kind, identities.c.value).where(
                identities.c.tenant_id == tenant_id, identities.c.customer_id == duplicate_id
            )
        )
    ]
    await conn.execute(
        delete(identities).where(
            identities.c.tenant_id == tenant_id, identities.c.customer_id == duplicate_id
        )
    )
    await _claim(conn, tenant_id, survivor_id, moved)


async def _claim(
    conn: AsyncConnection, tenant_id: str, customer_id: str, wanted: Sequence[Identity]
) -> None:
    if not wanted:
        return
    held = {
        (kind, value)
        for kind, value in await conn.execute(
            select(identities.c.kind, identities.c.value).where(
                identities.c.tenant_id == tenant_id, identities.c.customer_id == customer_id
            )
        )
    }
    rows = [
        {"tenant_id": tenant_id, "kind": kind, "value": value, "customer_id": customer_id}
        for kind, value in dict.fromkeys(wanted)
        if (kind, value) not in held
    ]
    if rows:
        await conn.execute(insert(identities), rows)


async def record_import_run(conn: AsyncConnection, run: Mapping[str, Any]) -> None:
    await conn.execute(insert(import_runs).values(**run))


# --- reads ---------------------------------------------------------------------------


async def identity_holders(
    conn: AsyncConnection, tenant_id: str, wanted: Iterable[Identity]
) -> dict[Identity, str]:
    """Which live customer holds each identity (the earliest id when several do)."""
    holders: dict[Identity, str] = {}
    by_kind: dict[str, list[str]] = {}
    for kind, value in sorted(set(wanted)):
        by_kind.setdefault(kind, []).append(value)
    for kind, values in by_kind.items():
        # One kind per query and a plain IN on the value: an index range scan on
        # PostgreSQL (a row-value IN list would scan the whole table).
        for start in range(0, len(values), 1000):
            rows = await conn.execute(
                select(identities.c.value, identities.c.customer_id)
                .where(
                    identities.c.tenant_id == tenant_id,
                    identities.c.kind == kind,
                    identities.c.value.in_(values[start : start + 1000]),
                )
                .order_by(identities.c.customer_id)
            )
            for value, customer_id in rows:
                holders.setdefault((kind, value), customer_id)
    return holders


async def existing_ids(conn: AsyncConnection, tenant_id: str, ids: Sequence[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(ids), 1000):
        found.update(
            await conn.scalars(
                select(customers.c.customer_id).where(
                    customers.c.tenant_id == tenant_id,
                    customers.c.customer_id.in_(ids[start : start + 1000]),
                )
            )
        )
    return found


async def resolve(conn: AsyncConnection, tenant_id: str, customer_id: str) -> str | None:
    """The customer ``customer_id`` is now (its survivor if merged), or None if unknown."""
    row = (
        await conn.execute(
            select(customers.c.survivor_id).where(
                customers.c.tenant_id == tenant_id, customers.c.customer_id == customer_id
            )
        )
    ).first()
    if row is None:
        return None
    return str(row[0] or customer_id)


async def profile(conn: AsyncConnection, tenant_id: str, customer_id: str) -> dict[str, Any] | None:
    found = await conn.scalar(
        select(customers.c.profile).where(
            customers.c.tenant_id == tenant_id, customers.c.customer_id == customer_id
        )
    )
    return dict(found) if found is not None else None


async def records_of(conn: AsyncConnection, tenant_id: str, survivor_id: str) -> list[str]:
    """The survivor and every customer merged into it, directly or down a chain."""
    absorbed = await conn.scalars(
        select(customers.c.customer_id)
        .where(customers.c.tenant_id == tenant_id, customers.c.survivor_id == survivor_id)
        .order_by(customers.c.customer_id)
    )
    return [survivor_id, *absorbed]
