"""Registration in one round trip (PostgreSQL): the hot path of the contacts service.

A registration takes the tenant's and its identities' locks, looks for a customer
holding its email or phone, checks that the custom field definitions it was
validated against are still current, then writes its events, outbox rows, personal
data key and read model rows. Done statement by statement that is a dozen round
trips and as many SQLAlchemy compilations; here it is one call of a server-side
routine (docs/decisions/0007). The routine only stores: every decision (validation,
normalisation, the events themselves) is still made by the pure domain in Python.

Why a PL/pgSQL routine and not one CTE: the duplicate check must see registrations
committed while this one waited for its locks. A single statement reads one snapshot
taken before it waited; each statement of a (volatile) routine takes a fresh one, so
the look after the lock sees the winner's identity rows, as the statement-by-statement
path does.

The routine answers what stopped it, so the handler can say so or fall back:
``NULL`` registered; ``'email:<id>'`` or ``'phone:<id>'`` a duplicate of customer
``<id>``; ``'custom-fields'`` the definitions changed since they were cached.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from services.contacts.domain import Customer
from services.contacts.read_model import customer_list, customer_rows, write_locks

# The routine as it was before events kept their trace context (decision 0103).
BEFORE_TRACES = """
DROP FUNCTION IF EXISTS contacts_register(varchar, bigint, bigint[], varchar[], varchar[],
    boolean, varchar, integer, varchar, text, text, varchar, varchar, timestamptz, text, text,
    varchar[], varchar, varchar, varchar, bytea, timestamptz, varchar[], varchar[], varchar[],
    text[], varchar[], varchar[], timestamptz[])
"""
ROUTINE = """
CREATE OR REPLACE FUNCTION contacts_register(
    p_customer varchar, p_tenant_lock bigint, p_identity_locks bigint[],
    p_kinds varchar[], p_values varchar[], p_check_duplicates boolean,
    p_custom_fields_stream varchar, p_custom_fields_version integer,
    p_kind varchar, p_name text, p_email text, p_phone varchar, p_owner_id varchar,
    p_registered_at timestamptz, p_search_text text, p_profile text, p_tags varchar[],
    -- events_start_stream's parameters, under its names (p_tenant is the same tenant)
    p_tenant varchar, p_stream varchar, p_subject varchar, p_key bytea, p_now timestamptz,
    p_event_ids varchar[], p_types varchar[], p_partition_keys varchar[], p_data text[],
    p_correlation_ids varchar[], p_causation_ids varchar[], p_occurred_at timestamptz[],
    p_traceparents varchar[], p_tracestates varchar[]
) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    found text;
    lock_key bigint;
BEGIN
    -- Shared on the tenant (an import batch holds it exclusively), then each identity.
    PERFORM pg_advisory_xact_lock_shared(p_tenant_lock);
    FOREACH lock_key IN ARRAY p_identity_locks LOOP
        PERFORM pg_advisory_xact_lock(lock_key);
    END LOOP;
    IF (SELECT coalesce(max(version), 0) FROM events
        WHERE tenant_id = p_tenant AND stream_id = p_custom_fields_stream)
       <> p_custom_fields_version THEN
        RETURN 'custom-fields';
    END IF;
    IF p_check_duplicates THEN
        -- The earliest holder of the first identity held ("email" sorts before "phone").
        -- One primary-key probe per identity, whatever the planner believes about the
        -- table's size: a join planned on stale statistics sorted the whole tenant.
        SELECT w.kind || ':' || holder.customer_id INTO found
        FROM unnest(p_kinds, p_values) AS w(kind, value)
        CROSS JOIN LATERAL (
            SELECT i.customer_id FROM contacts_identities i
            WHERE i.tenant_id = p_tenant AND i.kind = w.kind AND i.value = w.value
            ORDER BY i.customer_id LIMIT 1
        ) AS holder
        ORDER BY w.kind LIMIT 1;
        IF found IS NOT NULL THEN
            RETURN found;
        END IF;
    END IF;
    PERFORM events_start_stream(p_tenant => p_tenant, p_stream => p_stream,
        p_subject => p_subject, p_key => p_key, p_now => p_now, p_event_ids => p_event_ids,
        p_types => p_types, p_partition_keys => p_partition_keys, p_data => p_data,
        p_correlation_ids => p_correlation_ids, p_causation_ids => p_causation_ids,
        p_occurred_at => p_occurred_at, p_traceparents => p_traceparents,
        p_tracestates => p_tracestates);
    INSERT INTO contacts_customers (tenant_id, customer_id, kind, name, email, phone, owner_id,
        registered_at, version, survivor_id, erased, search_text, profile)
    VALUES (p_tenant, p_customer, p_kind, p_name, p_email, p_phone, p_owner_id,
        p_registered_at, cardinality(p_event_ids), NULL, false, p_search_text, p_profile::jsonb);
    INSERT INTO contacts_customer_tags (tenant_id, tag, customer_id)
    SELECT p_tenant, t, p_customer FROM unnest(p_tags) AS t;
    INSERT INTO contacts_identities (tenant_id, kind, value, customer_id)
    SELECT p_tenant, w.kind, w.value, p_customer FROM unnest(p_kinds, p_values) AS w(kind, value);
    RETURN NULL;
END $$
"""

# The routine's parameters, read from its own signature: the call names each one
# (``p_name => $11``), so the Python side and the SQL side agree by name, not position.
PARAMETERS: tuple[str, ...] = tuple(
    re.findall(r"\b(p_\w+) \w+(?:\[\])?[,\n]", ROUTINE.split(") RETURNS", 1)[0])
)
CALL = "SELECT contacts_register({})".format(
    ", ".join(f"{name} => ${i}" for i, name in enumerate(PARAMETERS, start=1))
)


@dataclass(frozen=True, slots=True)
class Refused:
    """Why the routine wrote nothing: a duplicate's holder, or stale custom fields."""

    duplicate_of: tuple[str, str] | None  # (field, existing customer id)

    @classmethod
    def parse(cls, answer: str) -> Refused:
        if answer == "custom-fields":
            return cls(None)
        field, _, holder = answer.partition(":")
        return cls((field, holder))


async def register(
    conn: AsyncConnection,
    customer: Customer,
    *,
    check_duplicates: bool,
    custom_fields_stream: str,
    custom_fields_version: int,
    start_stream: Mapping[str, Any],
) -> Refused | None:
    """Run the routine for ``customer`` (its state after registration); None: done."""
    tenant_id = customer.tenant_id
    claimed = customer_list.identities_of(customer.email, customer.phone)
    row = customer_rows.row_of(customer)
    if start_stream["p_tenant"] != tenant_id:
        raise ValueError("the stream's events belong to another tenant")
    arguments = {
        **start_stream,
        "p_customer": customer.id,
        "p_tenant_lock": write_locks.tenant_lock_key(tenant_id),
        "p_identity_locks": write_locks.identity_lock_keys(tenant_id, claimed),
        "p_kinds": [kind for kind, _ in claimed],
        "p_values": [value for _, value in claimed],
        "p_check_duplicates": check_duplicates,
        "p_custom_fields_stream": custom_fields_stream,
        "p_custom_fields_version": custom_fields_version,
        "p_kind": row["kind"],
        "p_name": row["name"],
        "p_email": row["email"],
        "p_phone": row["phone"],
        "p_owner_id": row["owner_id"],
        "p_registered_at": row["registered_at"],
        "p_search_text": row["search_text"],
        "p_profile": json.dumps(row["profile"], separators=(",", ":"), ensure_ascii=False),
        "p_tags": sorted(customer.tags),
    }
    if arguments.keys() != set(PARAMETERS):
        raise ValueError(f"contacts_register takes {PARAMETERS}, given {sorted(arguments)}")
    driver: Any = (await conn.get_raw_connection()).driver_connection
    answer = await driver.fetchval(CALL, *(arguments[name] for name in PARAMETERS))
    return None if answer is None else Refused.parse(answer)
