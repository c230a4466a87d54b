"""How customers point at each other: a company's key contacts (people), and who
referred a customer (once; never a loop: decision 0040)."""

from __future__ import annotations

from collections.abc import Mapping

from libs.events.catalog import DomainEvent
from libs.events.catalog.contacts import (
    CustomerReferred,
    KeyContactChanged,
)
from services.contacts.commands import (
    RecordReferral,
    SetKeyContact,
)
from services.contacts.domain.customer import Customer
from services.contacts.domain.errors import InvalidReferrer, NotAPerson, ReferralAlreadyRecorded
from services.contacts.domain.guards import ensure_company, referenced


def set_key_contact(
    command: SetKeyContact, company: Customer, others: Mapping[str, Customer | None]
) -> list[DomainEvent]:
    ensure_company(company, "customer_id")
    contact = referenced(command.contact_id, company.tenant_id, others)
    if contact.kind != "person":
        raise NotAPerson(contact.id, "contact_id")
    previous = company.key_contacts.get(command.role)
    if previous == contact.id:
        return []
    return [KeyContactChanged(customer_id=company.id, role=command.role,
                              previous_contact_id=previous, contact_id=contact.id)]


def record_referral(
    command: RecordReferral, customer: Customer, others: Mapping[str, Customer | None]
) -> list[DomainEvent]:
    if customer.referred_by == command.referrer_id:
        return []  # the same request again
    if customer.referred_by is not None:
        raise ReferralAlreadyRecorded(customer.id, customer.referred_by)
    if command.referrer_id == customer.id:
        raise InvalidReferrer("a customer cannot refer itself")
    referrer = referenced(command.referrer_id, customer.tenant_id, others)
    if referrer.referred_by == customer.id:
        raise InvalidReferrer("was referred by this customer")
    return [CustomerReferred(customer_id=customer.id, referrer_id=referrer.id)]
