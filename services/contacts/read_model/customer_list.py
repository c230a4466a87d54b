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

Race-free duplicate detection: on PostgreSQL a registration takes a transaction
advisory lock per (tenant, identity) before it looks, so of two concurrent
registrations with one email the second waits and then sees the first. Imports
take the tenant's lock exclusively per batch (and registrations take it shared),
so a batch of thousands of rows needs one lock, not thousands. SQLite already
runs one writer at a time (BEGIN IMMEDIATE).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
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
    and_,
    delete,
    insert,
    or_,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from libs.platform.db import JsonDocument, UtcDateTime, is_postgres
from libs.platform.dependencies import decode_cursor, encode_cursor
from services.contacts.domain import Customer, search_keys

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

MAX_PAGE = 200


# --- what a row holds ---------------------------------------------------------------


def identities_of(email: str | None, phone: str | None) -> list[Identity]:
    """The identities a customer with this email and phone claims, in lock order."""
    found: list[Identity] = []
    if email:
        found.append(("email", email.lower()))
    if phone:
        found.append(("phone", phone))
    return sorted(found)


def profile_of(customer: Customer) -> dict[str, Any]:
    """The customer as the API shows it (and as the row keeps it)."""
    return {
        "id": customer.id,
        "kind": customer.kind,
        "name": customer.name,
        "email": customer.email,
        "phone": customer.phone,
        "birthday": customer.birthday.isoformat() if customer.birthday else None,
        "owner_id": customer.owner_id,
        "company_id": customer.company_id,
        "tags": list(customer.tags),
        "attributes": dict(customer.attributes),
        "key_contacts": dict(customer.key_contacts),
        "consents": {
            channel: {"granted": record.granted, "source": record.source, "at": _iso(record.at)}
            for channel, record in sorted(customer.consents.items())
        },
        "interaction_count": customer.interaction_count,
        "last_interaction_at": _iso(customer.last_interaction_at),
        "registered_at": _iso(customer.registered_at),
        "merged_into": customer.merged_into,
        "merged_from": list(customer.absorbed),
        "referred_by": customer.referred_by,
        "erased": customer.erased,
        "version": customer.version,
    }


def search_text_of(customer: Customer) -> str:
    """Everything ``q`` may match, lowercased, one key per line."""
    if customer.erased:
        return ""
    keys = list(search_keys(customer.name))
    if customer.email:
        keys.append(customer.email.lower())
    if customer.phone:
        # The digits without "+" hold the national number too ("+86 138..." -> "86138..."),
        # so a number typed without its country code is found as a substring.
        keys.append(customer.phone.lstrip("+"))
    return "\n".join(k for k in dict.fromkeys(keys) if k)


def _iso(value: datetime | None) -> str | None:
    # One zone in answers (UTC), whatever offset the caller or a migration gave.
    return value.astimezone(UTC).isoformat() if value is not None else None


def row_of(customer: Customer) -> dict[str, Any]:
    return {
        "tenant_id": customer.tenant_id,
        "customer_id": customer.id,
        "kind": customer.kind,
        "name": customer.name,
        "email": customer.email,
        "phone": customer.phone,
        "owner_id": customer.owner_id,
        "registered_at": customer.registered_at,
        "version": customer.version,
        "erased": customer.erased,
        "search_text": search_text_of(customer),
        "profile": profile_of(customer),
    }


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


# --- locks for duplicate detection ---------------------------------------------------


def _lock_key(*parts: str) -> int:
    # A signed 64-bit key for pg_advisory_xact_lock(bigint), stable across processes.
    digest = hashlib.blake2b("\x1f".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def tenant_lock_key(tenant_id: str) -> int:
    return _lock_key("tenant", tenant_id)


def identity_lock_keys(tenant_id: str, wanted: Sequence[Identity]) -> list[int]:
    """The identities' lock keys in the order every writer takes them (no deadlock)."""
    return sorted({_lock_key("identity", tenant_id, kind, value) for kind, value in wanted})


async def lock_identities(
    conn: AsyncConnection, tenant_id: str, wanted: Sequence[Identity]
) -> None:
    """Serialise registrations that claim the same identity (PostgreSQL; a no-op on SQLite).

    Held until the transaction ends, so a competitor that waited here sees the
    winner's committed identity rows when it looks.
    """
    if not is_postgres(conn.engine):
        return
    keys = identity_lock_keys(tenant_id, wanted)
    # Shared on the tenant: an import batch (exclusive) and registrations exclude each other.
    calls = ["pg_advisory_xact_lock_shared(:tenant)"]
    calls += [f"pg_advisory_xact_lock(:k{i})" for i in range(len(keys))]
    params: dict[str, int] = {"tenant": tenant_lock_key(tenant_id)}
    params.update({f"k{i}": key for i, key in enumerate(keys)})
    await conn.execute(text(f"SELECT {', '.join(calls)}"), params)


async def lock_customers(
    conn: AsyncConnection, tenant_id: str, customer_ids: Sequence[str]
) -> None:
    """Queue the writers of these customers' streams (PostgreSQL; a no-op on SQLite).

    The version check on append stays what keeps a change from being lost; this
    only makes concurrent writers of one customer take turns instead of racing
    and deciding again, so a busy customer (a call centre logging interactions)
    never starves an erasure or a profile change. Taken first in a transaction
    and in key order, so two writers never wait on each other.
    """
    if not is_postgres(conn.engine):
        return
    keys = sorted({_lock_key("customer", tenant_id, customer_id) for customer_id in customer_ids})
    calls = [f"pg_advisory_xact_lock(:k{i})" for i in range(len(keys))]
    await conn.execute(
        text(f"SELECT {', '.join(calls)}"), {f"k{i}": key for i, key in enumerate(keys)}
    )


async def plan_each_bulk_query(conn: AsyncConnection) -> None:
    """For this transaction, plan every statement for its own parameters (PostgreSQL).

    A bulk batch repeats the same 1,000-value IN lookups; after five runs PostgreSQL
    may switch to a generic plan that compares each row with every value, which
    made a 100,000-row import quadratic. Custom plans hash the list instead.
    """
    if is_postgres(conn.engine):
        await conn.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))


async def refresh_statistics(engine: AsyncEngine) -> None:
    """After a bulk import, let PostgreSQL plan with the tables' new sizes.

    Autovacuum would get there within a minute or so; until then the planner
    believes the tables are as small as before the import and picks plans (nested
    scans) that take seconds instead of milliseconds on the first searches.
    """
    if is_postgres(engine):
        # The event store's tables too: the relay's lookups by position and subject
        # suffer from the same stale sizes while it publishes the import.
        names = [t.name for t in metadata.sorted_tables]
        names += ["events", "outbox", "personal_data_keys"]
        async with engine.connect() as conn:
            await conn.execute(text(f"ANALYZE {', '.join(names)}"))
            await conn.commit()


async def lock_tenant(conn: AsyncConnection, tenant_id: str) -> None:
    """Exclusive on the tenant's identities for one import batch (PostgreSQL)."""
    if is_postgres(conn.engine):
        await conn.execute(
            text("SELECT pg_advisory_xact_lock(:tenant)"),
            {"tenant": tenant_lock_key(tenant_id)},
        )


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


@dataclass(frozen=True, slots=True)
class CustomerQuery:
    """What ``GET /customers`` may filter on; None means "any"."""

    q: str | None = None
    tags: tuple[str, ...] = ()
    owner_id: str | None = None
    kind: str | None = None
    registered_from: datetime | None = None
    registered_before: datetime | None = None


@dataclass(frozen=True, slots=True)
class Page:
    items: list[dict[str, Any]]
    next_cursor: str | None


def normalise_query(raw: str) -> str:
    """The search box's text in the form ``search_text`` keeps."""
    text_ = " ".join(unicodedata.normalize("NFKC", raw).lower().split())
    # "138-0013-8000" or "(07911) 123 456": a phone number, matched by its digits; a
    # leading 0 is the trunk prefix dialled at home, never part of the E.164 number.
    if re.fullmatch(r"[0-9\s()+.\-]+", text_) and sum(c.isdigit() for c in text_) >= 3:
        return "".join(c for c in text_ if c.isdigit()).lstrip("0")
    return text_


def _like_pattern(term: str) -> str:
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def search(
    conn: AsyncConnection,
    tenant_id: str,
    query: CustomerQuery,
    *,
    cursor: str | None,
    limit: int,
) -> Page:
    """Live customers of the tenant, newest registration first, ``limit`` at a time."""
    conditions = [
        customers.c.tenant_id == tenant_id,
        customers.c.survivor_id.is_(None),
        customers.c.erased.is_(False),
    ]
    if query.q is not None and (term := normalise_query(query.q)):
        conditions.append(customers.c.search_text.like(_like_pattern(term), escape="\\"))
    for tag in query.tags:
        # Correlated EXISTS: one primary-key probe per candidate row, walked in the
        # listing index's order, so a page stops as soon as it is full.
        conditions.append(
            select(customer_tags.c.customer_id)
            .where(
                customer_tags.c.tenant_id == customers.c.tenant_id,
                customer_tags.c.tag == tag,
                customer_tags.c.customer_id == customers.c.customer_id,
            )
            .exists()
        )
    if query.owner_id is not None:
        conditions.append(customers.c.owner_id == query.owner_id)
    if query.kind is not None:
        conditions.append(customers.c.kind == query.kind)
    if query.registered_from is not None:
        conditions.append(customers.c.registered_at >= query.registered_from)
    if query.registered_before is not None:
        conditions.append(customers.c.registered_at < query.registered_before)
    if cursor is not None:
        at, after_id = decode_cursor(cursor, datetime, str)
        conditions.append(
            or_(
                customers.c.registered_at < at,
                and_(customers.c.registered_at == at, customers.c.customer_id < after_id),
            )
        )
    limit = max(1, min(limit, MAX_PAGE))
    rows = (
        await conn.execute(
            select(customers.c.profile, customers.c.registered_at, customers.c.customer_id)
            .where(*conditions)
            .order_by(customers.c.registered_at.desc(), customers.c.customer_id.desc())
            .limit(limit + 1)
        )
    ).all()
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1][1], rows[-1][2])
    return Page(items=[dict(r[0]) for r in rows], next_cursor=next_cursor)
