"""A customer as its row in ``contacts_customers`` keeps it: the profile the API shows,
the columns lists filter and sort on, and the ``search_text`` that ``q`` matches."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from services.contacts.domain import Customer, search_keys


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
