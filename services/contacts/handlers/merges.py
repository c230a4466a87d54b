"""Merging a duplicate into its survivor: both streams change in one transaction,
written in one order of streams so that two crossed merges conflict rather than
deadlock."""

from __future__ import annotations

from libs.events.write_path import new_events
from services.contacts.commands import MergeCustomer
from services.contacts.domain import (
    decide_merge,
    existing,
)
from services.contacts.handlers.customers import Contacts, Written, evolved, load_customer
from services.contacts.read_model import customer_list, write_locks


async def merge_customers(
    contacts: Contacts, tenant_id: str, command: MergeCustomer, *, expected: int | None = None
) -> Written:
    """The survivor absorbs the duplicate; both streams change in one transaction."""
    survivor_id, duplicate_id = command.customer_id, command.duplicate_id

    async def attempt() -> Written:
        now = contacts.clock()
        async with contacts.engine.begin() as conn:
            await write_locks.lock_customers(conn, tenant_id, [survivor_id, duplicate_id])
            survivor = existing(
                await load_customer(contacts, conn, tenant_id, survivor_id), survivor_id
            )
            contacts.check_version(survivor_id, expected, survivor.version)
            duplicate = existing(
                await load_customer(contacts, conn, tenant_id, duplicate_id), duplicate_id
            )
            for_survivor, for_duplicate = decide_merge(survivor, duplicate, now)
            if not for_survivor and not for_duplicate:
                return Written(survivor_id, survivor.version, False)
            changes = [(survivor, for_survivor), (duplicate, for_duplicate)]
            # The survivor's merge causes what happens to the duplicate.
            survivor_new = new_events(for_survivor, survivor.id, now)
            cause = survivor_new[0].event_id if survivor_new else None
            appending = {
                survivor.id: survivor_new,
                duplicate.id: new_events(for_duplicate, duplicate.id, now, caused_by=cause),
            }
            versions: dict[str, int] = {}
            # Always the same order of streams: two crossed merges then conflict
            # cleanly on the first stream instead of deadlocking on the second.
            for state, _ in sorted(changes, key=lambda change: change[0].id):
                versions[state.id] = await contacts.store.append(
                    tenant_id, state.id, state.version, appending[state.id], conn=conn
                )
            for state, events in changes:
                await customer_list.update_customer(conn, state, evolved(state, events))
            await customer_list.record_merge(conn, tenant_id, survivor_id, duplicate_id)
        contacts.appended(len(for_survivor) + len(for_duplicate))
        return Written(survivor_id, versions[survivor_id], True)

    return await contacts.retrying(survivor_id, expected, attempt)
