"""The advisory locks writers of the contacts tables take (PostgreSQL; no-ops on SQLite).

Race-free duplicate detection: on PostgreSQL a registration takes a transaction
advisory lock per (tenant, identity) before it looks, so of two concurrent
registrations with one email the second waits and then sees the first. Imports
take the tenant's lock exclusively per batch (and registrations take it shared),
so a batch of thousands of rows needs one lock, not thousands. SQLite already
runs one writer at a time (BEGIN IMMEDIATE).

Writers of one customer's stream also queue on a lock of their own, so a busy
customer never starves an erasure or a profile change.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from libs.platform.db import is_postgres
from services.contacts.read_model.customer_list import Identity


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


async def lock_tenant(conn: AsyncConnection, tenant_id: str) -> None:
    """Exclusive on the tenant's identities for one import batch (PostgreSQL)."""
    if is_postgres(conn.engine):
        await conn.execute(
            text("SELECT pg_advisory_xact_lock(:tenant)"),
            {"tenant": tenant_lock_key(tenant_id)},
        )
