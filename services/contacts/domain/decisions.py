"""``decide``: the events a command causes on a customer, or the ContactsError that
says why not. Each group of commands has its module; the one-line rules (tags,
owner, removing a key contact) are decided here."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from libs.events.catalog import DomainEvent
from libs.events.catalog.contacts import (
    CustomerTagged,
    CustomerUntagged,
    KeyContactChanged,
    OwnerChanged,
    PersonalDataErased,
)
from services.contacts.commands import (
    MAX_TAGS,
    ChangeConsent,
    ChangeOwner,
    ChangeProfile,
    CustomerCommand,
    ErasePersonalData,
    LogInteraction,
    RecordReferral,
    RegisterCustomer,
    RemoveKeyContact,
    SetKeyContact,
    TagCustomer,
    UntagCustomer,
)
from services.contacts.domain.consents import change_consent
from services.contacts.domain.custom_fields import NO_CUSTOM_FIELDS, CustomFieldDefinition
from services.contacts.domain.customer import NO_OTHERS, Customer
from services.contacts.domain.errors import TooManyTags
from services.contacts.domain.guards import ensure_company, ensure_writable, existing
from services.contacts.domain.interactions import log_interaction
from services.contacts.domain.profile import change_profile
from services.contacts.domain.registration import register
from services.contacts.domain.relationships import record_referral, set_key_contact


def references(command: CustomerCommand) -> frozenset[str]:
    """Ids of the other customers ``decide`` needs in ``others`` for this command."""
    match command:
        case RegisterCustomer(company_id=str(company_id)):
            return frozenset({company_id})
        case ChangeProfile(company_id=str(company_id)):
            return frozenset({company_id})
        case SetKeyContact(contact_id=contact_id):
            return frozenset({contact_id})
        case RecordReferral(referrer_id=referrer_id):
            return frozenset({referrer_id})
    return frozenset()


def decide(
    command: CustomerCommand,
    state: Customer | None,
    now: datetime,
    *,
    definitions: Mapping[str, CustomFieldDefinition] = NO_CUSTOM_FIELDS,
    others: Mapping[str, Customer | None] = NO_OTHERS,
) -> list[DomainEvent]:
    """The events ``command`` causes on ``state``, or a ContactsError saying why not."""
    if isinstance(command, RegisterCustomer):
        return register(command, state, now, definitions, others)
    customer = existing(state, command.customer_id)
    if isinstance(command, ErasePersonalData):
        return _erase(command, customer, now)
    ensure_writable(customer)
    match command:
        case ChangeProfile():
            return change_profile(command, customer, now, definitions, others)
        case TagCustomer(tags=tags):
            added = [t for t in tags if t not in customer.tags]
            if len(customer.tags) + len(added) > MAX_TAGS:
                raise TooManyTags()
            return [CustomerTagged(customer_id=customer.id, tag=t) for t in added]
        case UntagCustomer(tags=tags):
            return [CustomerUntagged(customer_id=customer.id, tag=t) for t in tags
                    if t in customer.tags]
        case ChangeOwner(owner_id=owner_id):
            if owner_id == customer.owner_id:
                return []
            return [OwnerChanged(customer_id=customer.id, from_owner_id=customer.owner_id,
                                 to_owner_id=owner_id)]
        case SetKeyContact():
            return set_key_contact(command, customer, others)
        case RecordReferral():
            return record_referral(command, customer, others)
        case RemoveKeyContact(role=role):
            ensure_company(customer, "customer_id")
            previous = customer.key_contacts.get(role)
            if previous is None:
                return []
            return [KeyContactChanged(customer_id=customer.id, role=role,
                                      previous_contact_id=previous, contact_id=None)]
        case LogInteraction():
            return log_interaction(command, customer, now)
        case ChangeConsent():
            return change_consent(command, customer, now)
    raise TypeError(f"decide does not handle {type(command).__name__}")


def _erase(command: ErasePersonalData, customer: Customer, now: datetime) -> list[DomainEvent]:
    # Allowed on a merged duplicate too: its stream still holds the person's data.
    if customer.erased:
        return []
    return [PersonalDataErased(customer_id=customer.id, erased_at=now, by=command.by)]
