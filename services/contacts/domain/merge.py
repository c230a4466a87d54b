"""Merging a duplicate into the customer that survives it: the survivor keeps what it
has and takes only what it lacks; the duplicate then points at the survivor."""

from __future__ import annotations

from datetime import datetime
from typing import TypeVar

from libs.events.catalog import DomainEvent
from libs.events.catalog.contacts import (
    ConsentRecord,
    CustomerMerged,
    CustomerMergedInto,
)
from services.contacts.domain.customer import Customer
from services.contacts.domain.errors import (
    CannotMergeDifferentKinds,
    CannotMergeIntoItself,
    CustomerNotFound,
)
from services.contacts.domain.guards import ensure_writable

T = TypeVar("T")


def decide_merge(
    survivor: Customer, duplicate: Customer, now: datetime
) -> tuple[list[DomainEvent], list[DomainEvent]]:
    """(events for the survivor's stream, events for the duplicate's stream).

    The survivor keeps everything it has and takes from the duplicate only what it
    lacks; for consent, the more recent decision per channel wins.
    """
    if survivor.id == duplicate.id:
        raise CannotMergeIntoItself(survivor.id)
    if duplicate.tenant_id != survivor.tenant_id:
        raise CustomerNotFound(duplicate.id)
    if duplicate.merged_into == survivor.id:
        return [], []  # a retried merge
    ensure_writable(survivor)
    ensure_writable(duplicate)
    if survivor.kind != duplicate.kind:
        raise CannotMergeDifferentKinds(survivor.id, duplicate.id)

    def missing(mine: T | None, theirs: T | None) -> T | None:
        return theirs if mine is None else None

    absorbed = CustomerMerged(
        customer_id=survivor.id,
        duplicate_id=duplicate.id,
        email=missing(survivor.email, duplicate.email),
        phone=missing(survivor.phone, duplicate.phone),
        birthday=missing(survivor.birthday, duplicate.birthday),
        owner_id=missing(survivor.owner_id, duplicate.owner_id),
        company_id=missing(survivor.company_id, duplicate.company_id),
        tags=[t for t in duplicate.tags if t not in survivor.tags],
        attributes={k: v for k, v in duplicate.attributes.items() if k not in survivor.attributes},
        key_contacts={
            role: person for role, person in duplicate.key_contacts.items()
            if role not in survivor.key_contacts
        },
        consents={
            channel: record for channel, record in duplicate.consents.items()
            if _newer(record, survivor.consents.get(channel))
        },
        interaction_count=duplicate.interaction_count,
        last_interaction_at=duplicate.last_interaction_at,
    )
    return [absorbed], [CustomerMergedInto(customer_id=duplicate.id, survivor_id=survivor.id)]


def _newer(record: ConsentRecord, than: ConsentRecord | None) -> bool:
    return than is None or record.at > than.at
