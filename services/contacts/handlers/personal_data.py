"""What the person may ask of what is held about them: an export of all of it (a data
access request), or its erasure, the records merged into theirs included."""

from __future__ import annotations

import dataclasses
import logging
import uuid
from dataclasses import dataclass
from typing import Any

from libs.events.catalog.contacts import InteractionLogged
from libs.events.write_path import new_events
from libs.platform.db import drop_overwritten_pages
from services.contacts.commands import ErasePersonalData
from services.contacts.domain import (
    CustomerNotFound,
    decide,
    existing,
)
from services.contacts.handlers.customers import Contacts, evolved, load_customer
from services.contacts.handlers.history import customer_history, event_view
from services.contacts.read_model import customer_list, write_locks

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Erasure:
    customer_id: str
    version: int
    # The customer and every duplicate merged into it: all records of the person.
    erased_ids: list[str]


async def erase_personal_data(
    contacts: Contacts, tenant_id: str, customer_id: str, *, by: str, expected: int | None = None
) -> Erasure:
    """Forget the person: every record of them, the merged duplicates' included.

    Appends PersonalDataErased to each record (so every read model drops it),
    destroys each record's key (so the history reads redacted from now on) and
    scrubs this service's rows, in one transaction.
    """

    async def attempt() -> Erasure:
        now = contacts.clock()
        appended = 0
        async with contacts.engine.begin() as conn:
            target = await customer_list.resolve(conn, tenant_id, customer_id)
            if target is None:
                raise CustomerNotFound(customer_id)
            records = await customer_list.records_of(conn, tenant_id, target)
            await write_locks.lock_customers(conn, tenant_id, records)
            version = 0
            states = {
                record_id: existing(
                    await load_customer(contacts, conn, tenant_id, record_id), record_id
                )
                for record_id in records
            }
            decided = {
                record_id: decide(ErasePersonalData(customer_id=record_id, by=by), state, now)
                for record_id, state in states.items()
            }
            # The erasure asked for (the target's) causes its merged records' erasures.
            cause = str(uuid.uuid4()) if decided.get(target) else None
            for record_id in sorted(records):
                state = states[record_id]
                if record_id == target:
                    contacts.check_version(target, expected, state.version)
                events = decided[record_id]
                current = state.version
                if events:
                    appending = new_events(
                        events, record_id, now, caused_by=None if record_id == target else cause
                    )
                    if record_id == target and cause is not None:
                        appending[0] = dataclasses.replace(appending[0], event_id=cause)
                    current = await contacts.store.append(
                        tenant_id, record_id, state.version, appending, conn=conn
                    )
                    await customer_list.update_customer(conn, state, evolved(state, events))
                    appended += len(events)
                # Also when already erased: a key written since must not survive.
                await contacts.store.erase_personal_data(tenant_id, record_id, conn=conn)
                if record_id == target:
                    version = current
        contacts.appended(appended)
        return Erasure(target, version, records)

    erasure = await contacts.retrying(customer_id, expected, attempt)
    if not await drop_overwritten_pages(contacts.engine):
        log.warning("erased data of %s still in the write-ahead log: a reader held it", customer_id)
    return erasure


async def export_customer(contacts: Contacts, tenant_id: str, customer_id: str) -> dict[str, Any]:
    """Everything this service holds about the person, machine-readable (data access)."""
    history = await customer_history(contacts, tenant_id, customer_id)
    interactions = [
        {k: v for k, v in e.data.items() if k != "customer_id"} | {"customer_id": e.stream_id}
        for e in history.events
        if e.type == InteractionLogged.type_name
    ]
    return {
        "exported_at": contacts.clock().isoformat(),
        "tenant_id": tenant_id,
        "customer": history.records[0] if history.records else None,
        # Records merged into this customer: same person, kept with their own ids.
        "merged_records": history.records[1:],
        "interactions": interactions,
        "history": [event_view(e) for e in history.events],
    }
