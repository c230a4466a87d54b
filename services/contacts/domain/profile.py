"""Changing a customer's profile: a JSON merge patch of its fields and custom
attributes, a field sent as null removed; only what differs becomes an event."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TypeVar

from libs.events.catalog import DomainEvent
from libs.events.catalog.contacts import (
    AttributeValue,
    ClearableField,
    ProfileChanged,
)
from services.contacts.commands import ChangeProfile
from services.contacts.domain.custom_fields import CustomFieldDefinition, validate_attributes
from services.contacts.domain.customer import Customer
from services.contacts.domain.errors import InvalidAttribute, NotAPerson
from services.contacts.domain.guards import company_of_person, ensure_born

T = TypeVar("T")


def change_profile(
    command: ChangeProfile,
    customer: Customer,
    now: datetime,
    definitions: Mapping[str, CustomFieldDefinition],
    others: Mapping[str, Customer | None],
) -> list[DomainEvent]:
    sent = command.model_fields_set
    cleared: list[ClearableField] = []

    def changed(name: ClearableField, new: T | None, old: T | None) -> T | None:
        """The new value if the caller sent one that differs; records removals."""
        if name not in sent or new == old:
            return None
        if new is None:
            cleared.append(name)
        return new

    name = command.name if "name" in sent and command.name != customer.name else None
    email = changed("email", command.email, customer.email)
    phone = changed("phone", command.phone, customer.phone)
    birthday = changed("birthday", command.birthday, customer.birthday)
    company_id = changed("company_id", command.company_id, customer.company_id)
    ensure_born(birthday, now)
    if company_id is not None:
        if customer.kind != "person":
            raise NotAPerson(customer.id, "company_id")
        company_of_person(company_id, customer.tenant_id, others)
    attributes, attributes_removed = _attribute_changes(command, customer, definitions)

    if not (name or email or phone or birthday or company_id or cleared
            or attributes or attributes_removed):
        return []
    return [
        ProfileChanged(
            customer_id=customer.id,
            name=name,
            email=email,
            phone=phone,
            birthday=birthday,
            company_id=company_id,
            cleared=cleared,
            attributes=attributes,
            attributes_removed=attributes_removed,
        )
    ]


def _attribute_changes(
    command: ChangeProfile,
    customer: Customer,
    definitions: Mapping[str, CustomFieldDefinition],
) -> tuple[dict[str, AttributeValue], list[str]]:
    patch = command.attributes
    # Required is checked only for what the command touches: a field made required
    # later must not block every other edit of customers who predate it.
    values = validate_attributes(patch, definitions, require_all=False)
    changed = {k: v for k, v in values.items() if customer.attributes.get(k) != v}
    removed = sorted(k for k, v in patch.items() if v is None and k in customer.attributes)
    for name in removed:
        definition = definitions.get(name)
        if definition is not None and definition.required:
            raise InvalidAttribute(name, "is required")
    return changed, removed
