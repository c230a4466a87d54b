"""Registering a customer: a person or a company, its custom attributes checked, a
person's company the tenant's own."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from libs.events.catalog import DomainEvent
from libs.events.catalog.contacts import CustomerRegistered
from services.contacts.commands import RegisterCustomer
from services.contacts.domain.custom_fields import CustomFieldDefinition, validate_attributes
from services.contacts.domain.customer import Customer
from services.contacts.domain.errors import CustomerAlreadyExists
from services.contacts.domain.guards import company_of_person, ensure_born, ensure_not_in_future


def register(
    command: RegisterCustomer,
    state: Customer | None,
    now: datetime,
    definitions: Mapping[str, CustomFieldDefinition],
    others: Mapping[str, Customer | None],
) -> list[DomainEvent]:
    if state is not None:
        raise CustomerAlreadyExists(command.customer_id)
    registered_at = ensure_not_in_future("registered_at", command.registered_at or now, now)
    ensure_born(command.birthday, now)
    if command.company_id is not None:
        company_of_person(command.company_id, command.tenant_id, others)
    attributes = validate_attributes(command.attributes, definitions)
    return [
        CustomerRegistered(
            customer_id=command.customer_id,
            tenant_id=command.tenant_id,
            kind=command.kind,
            name=command.name,
            email=command.email,
            phone=command.phone,
            birthday=command.birthday,
            owner_id=command.owner_id,
            tags=command.tags,
            attributes=attributes,
            company_id=command.company_id,
            registered_at=registered_at,
        )
    ]
