"""A customer's history: the events of its stream and of every duplicate merged into
it, in the order they were recorded, as the history and the export show them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from libs.events.store import RecordedEvent
from services.contacts.domain import CustomerNotFound
from services.contacts.handlers.customers import Contacts
from services.contacts.read_model import customer_list


@dataclass(frozen=True, slots=True)
class History:
    customer_id: str
    version: int
    events: list[RecordedEvent]
    records: list[dict[str, Any]]


async def customer_history(contacts: Contacts, tenant_id: str, customer_id: str) -> History:
    """The union of the histories of the customer and the duplicates it absorbed,
    in the order they were recorded; personal fields of erased ones read redacted."""
    async with contacts.engine.connect() as conn:
        target = await customer_list.resolve(conn, tenant_id, customer_id)
        if target is None:
            raise CustomerNotFound(customer_id)
        events: list[RecordedEvent] = []
        records: list[dict[str, Any]] = []
        for record_id in await customer_list.records_of(conn, tenant_id, target):
            events += await contacts.store.read_stream(tenant_id, record_id, conn=conn)
            found = await customer_list.profile(conn, tenant_id, record_id)
            if found is not None:
                records.append(found)
    events.sort(key=lambda e: e.position)
    version = int(records[0]["version"]) if records else 0
    return History(target, version, events, records)


def event_view(event: RecordedEvent) -> dict[str, Any]:
    """One event as the history and the export show it (the CloudEvents names)."""
    return {
        "id": event.event_id,
        "type": event.type,
        "customer_id": event.stream_id,
        "sequence": event.version,
        "time": event.occurred_at.isoformat(),
        "recorded_at": event.recorded_at.isoformat(),
        "correlation_id": event.correlation_id,
        "data": event.data,
    }
