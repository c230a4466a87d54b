"""What a delivery still says once the person its event is about was erased.

A delivery keeps the CloudEvent as it was on the topic, where personal fields travel
opened (decision 0005). Once its subject (the event's partition key: a customer, or a
lead not yet converted) is erased, those fields read as the publishing service's
``PERSONAL_DATA`` says an erased field reads, in the delivery log and in every attempt
still to come: what the topic itself would carry if published again (decision 0098).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from libs.events.catalog import DomainEvent, contacts, pipeline, tickets

# Per event type, each personal field and the value it reads as once erased.
PERSONAL_FIELDS: Mapping[str, Mapping[str, Any]] = {
    **contacts.PERSONAL_DATA.fields,
    **pipeline.PERSONAL_DATA.fields,
    **tickets.PERSONAL_DATA.fields,
}


def erased_subject(event: DomainEvent) -> str | None:
    """Whose personal data ``event`` erases (a partition key), if it erases any."""
    match event:
        case contacts.PersonalDataErased():
            return event.customer_id
        case pipeline.LeadErased():
            return event.lead_id
    return None


def is_personal(type_name: str) -> bool:
    return type_name in PERSONAL_FIELDS


def redacted(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` with its personal fields as an erasure leaves them."""
    personal = PERSONAL_FIELDS.get(str(document.get("type")), {})
    data = document.get("data")
    if not personal or not isinstance(data, dict):
        return document
    erased = {name: value for name, value in personal.items() if name in data}
    return {**document, "data": {**data, **erased}}
