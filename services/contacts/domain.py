"""The Customer aggregate of the contacts service: pure rules, no I/O, no clock.

A customer (a person or a company) is the fold of its stream's events; handlers load
the stream, ``fold`` it, ask ``decide`` for new events and append them at the version
they read. ``now`` is always passed in, so time rules are testable without waiting.
The handlers' API, the error-to-status table and the rules worth knowing are in
docs/decisions/0023-the-customer-aggregate.md.
"""

from __future__ import annotations

import functools
import math
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from types import MappingProxyType
from typing import ClassVar, Literal, TypeVar

from pypinyin import Style, lazy_pinyin

from libs.events.catalog import DomainEvent
from libs.events.catalog.contacts import (
    AttributeValue,
    ClearableField,
    ConsentChanged,
    ConsentChannel,
    ConsentRecord,
    CustomerKind,
    CustomerMerged,
    CustomerMergedInto,
    CustomerReferred,
    CustomerRegistered,
    CustomerTagged,
    CustomerUntagged,
    CustomFieldDefined,
    CustomFieldType,
    InteractionLogged,
    KeyContactChanged,
    OwnerChanged,
    PersonalDataErased,
    ProfileChanged,
)
from libs.platform.errors import Conflict, DomainError, NotFound, Unprocessable
from services.contacts.commands import (
    MAX_TAGS,
    ChangeConsent,
    ChangeOwner,
    ChangeProfile,
    CustomerCommand,
    DefineCustomField,
    ErasePersonalData,
    LogInteraction,
    RecordReferral,
    RegisterCustomer,
    RemoveKeyContact,
    SetKeyContact,
    TagCustomer,
    UntagCustomer,
)

CLOCK_SKEW = timedelta(minutes=5)
MAX_TEXT_ATTRIBUTE = 1000
# A number attribute is read by spreadsheets and JavaScript as a double: fifteen
# digits are the most it keeps exactly. More is a paste gone wrong, not a figure.
MAX_NUMBER_DIGITS = 15
T = TypeVar("T")


# --- errors ---------------------------------------------------------------------------


class ContactsError(DomainError):
    """A command the contacts rules refuse; each subclass also says its HTTP status."""


class CustomerNotFound(ContactsError, NotFound):
    def __init__(self, customer_id: str) -> None:
        super().__init__(f"customer {customer_id} does not exist", customer_id=customer_id)
        self.customer_id = customer_id


class CustomerAlreadyExists(ContactsError, Conflict):
    def __init__(self, customer_id: str) -> None:
        super().__init__(f"customer {customer_id} already exists", existing_id=customer_id)
        self.customer_id = customer_id


class CustomerAlreadyMerged(ContactsError, Conflict):
    """The customer is a merged duplicate; the caller should use the survivor."""

    def __init__(self, customer_id: str, survivor_id: str) -> None:
        super().__init__(
            f"customer {customer_id} was merged into {survivor_id}",
            customer_id=customer_id, survivor_id=survivor_id,
        )
        self.customer_id = customer_id
        self.survivor_id = survivor_id


class DuplicateCustomer(ContactsError, Conflict):
    """Another customer of the tenant already has this normalised email or phone.

    Finding it needs the read model, so the handler raises it; the caller may
    register anyway once a person has judged that these are two customers.
    """

    def __init__(self, existing_id: str, field: Literal["email", "phone"]) -> None:
        super().__init__(
            f"a customer with this {field} already exists", existing_id=existing_id, field=field
        )
        self.existing_id = existing_id
        self.field = field


class CustomerErased(ContactsError):
    # 410 Gone: the customer existed, and nothing about them will come back.
    status_code: ClassVar[int] = 410

    def __init__(self, customer_id: str) -> None:
        super().__init__(
            f"the personal data of customer {customer_id} was erased", customer_id=customer_id
        )
        self.customer_id = customer_id


class CustomFieldAlreadyDefined(ContactsError, Conflict):
    """Changing a field's type would make the values customers already have invalid."""

    def __init__(self, name: str, type: CustomFieldType) -> None:
        super().__init__(f"custom field {name!r} is already defined as {type}", defined_type=type)
        self.name = name
        self.type = type


class CannotMergeIntoItself(ContactsError, Unprocessable):
    def __init__(self, customer_id: str) -> None:
        super().__init__("duplicate_id", "is the surviving customer itself")
        self.customer_id = customer_id


class ReferralAlreadyRecorded(ContactsError, Conflict):
    """A referral is recorded once: the bonus it may earn must not change hands."""

    def __init__(self, customer_id: str, referrer_id: str) -> None:
        super().__init__(
            f"customer {customer_id} was already referred by {referrer_id}",
            customer_id=customer_id, referrer_id=referrer_id,
        )
        self.customer_id = customer_id
        self.referrer_id = referrer_id


class InvalidReferrer(ContactsError, Unprocessable):
    """The customer itself, or a customer this one referred (a referral loop)."""

    def __init__(self, reason: str) -> None:
        super().__init__("referrer_id", reason)


class CannotMergeDifferentKinds(ContactsError, Unprocessable):
    def __init__(self, survivor_id: str, duplicate_id: str) -> None:
        super().__init__("duplicate_id", "a person and a company cannot be merged")
        self.survivor_id = survivor_id
        self.duplicate_id = duplicate_id


class NotACompany(ContactsError, Unprocessable):
    """``customer_id`` is a person where a company is needed; ``field`` says where."""

    def __init__(self, customer_id: str, field: str) -> None:
        super().__init__(field, f"customer {customer_id} is not a company")
        self.customer_id = customer_id


class NotAPerson(ContactsError, Unprocessable):
    """``customer_id`` is a company where a person is needed; ``field`` says where."""

    def __init__(self, customer_id: str, field: str) -> None:
        super().__init__(field, f"customer {customer_id} is not a person")
        self.customer_id = customer_id


class InvalidAttribute(ContactsError, Unprocessable):
    """A custom attribute that does not fit the tenant's definition of it.

    ``attribute`` is its name; ``field`` is where it sits in a request
    (``attributes.<name>``), as the 422 body reports it.
    """

    def __init__(self, attribute: str, reason: str) -> None:
        super().__init__(f"attributes.{attribute}", reason)
        self.attribute = attribute


class TooManyTags(ContactsError, Unprocessable):
    def __init__(self) -> None:
        super().__init__("tags", f"a customer has at most {MAX_TAGS} tags")


class TimeInTheFuture(ContactsError, Unprocessable):
    def __init__(self, field: str, at: datetime | date) -> None:
        super().__init__(field, f"{at.isoformat()} is in the future")
        self.at = at


# --- state ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CustomFieldDefinition:
    name: str
    type: CustomFieldType
    required: bool = False
    choices: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Customer:
    """A customer as its events tell it. Treat the mappings as read-only."""

    id: str
    tenant_id: str
    kind: CustomerKind
    name: str
    registered_at: datetime
    email: str | None = None
    phone: str | None = None
    birthday: date | None = None
    owner_id: str | None = None
    tags: tuple[str, ...] = ()  # sorted
    attributes: Mapping[str, AttributeValue] = field(default_factory=dict)
    company_id: str | None = None
    key_contacts: Mapping[str, str] = field(default_factory=dict)  # role -> person id
    consents: Mapping[ConsentChannel, ConsentRecord] = field(default_factory=dict)
    interaction_count: int = 0
    last_interaction_at: datetime | None = None
    # Kept so that a retried LogInteraction logs once.
    interaction_ids: frozenset[str] = frozenset()
    merged_into: str | None = None
    # Who referred this customer (CustomerReferred): set once.
    referred_by: str | None = None
    absorbed: tuple[str, ...] = ()  # ids of the duplicates merged into this one
    erased: bool = False
    version: int = 0

    def has_consent(self, channel: ConsentChannel) -> bool:
        """True only for an explicit grant: no record means no consent."""
        record = self.consents.get(channel)
        return record is not None and record.granted


NO_CUSTOM_FIELDS: Mapping[str, CustomFieldDefinition] = MappingProxyType({})
NO_OTHERS: Mapping[str, Customer | None] = MappingProxyType({})


# --- evolve and fold ------------------------------------------------------------------


def fold(events: Iterable[DomainEvent]) -> Customer | None:
    state: Customer | None = None
    for event in events:
        state = evolve(state, event)
    return state


def evolve(state: Customer | None, event: DomainEvent) -> Customer:
    if isinstance(event, CustomerRegistered):
        if state is not None:
            raise ValueError(f"customer {state.id} is registered twice in its stream")
        return _registered(event)
    if state is None:
        raise ValueError(f"{type(event).__name__} before CustomerRegistered")
    return replace(_apply(state, event), version=state.version + 1)


def _registered(event: CustomerRegistered) -> Customer:
    return Customer(
        id=event.customer_id,
        tenant_id=event.tenant_id,
        kind=event.kind,
        name=event.name,
        registered_at=event.registered_at,
        email=event.email,
        phone=event.phone,
        birthday=event.birthday,
        owner_id=event.owner_id,
        tags=tuple(sorted(set(event.tags))),
        attributes=dict(event.attributes),
        company_id=event.company_id,
        version=1,
    )


def _apply(state: Customer, event: DomainEvent) -> Customer:
    match event:
        case ProfileChanged():
            return _profile_changed(state, event)
        case CustomerTagged(tag=tag):
            return replace(state, tags=tuple(sorted({*state.tags, tag})))
        case CustomerUntagged(tag=tag):
            return replace(state, tags=tuple(t for t in state.tags if t != tag))
        case OwnerChanged(to_owner_id=owner_id):
            return replace(state, owner_id=owner_id)
        case KeyContactChanged(role=role, contact_id=contact_id):
            key_contacts = {r: c for r, c in state.key_contacts.items() if r != role}
            if contact_id is not None:
                key_contacts[role] = contact_id
            return replace(state, key_contacts=key_contacts)
        case InteractionLogged():
            return replace(
                state,
                interaction_count=state.interaction_count + 1,
                last_interaction_at=_latest(state.last_interaction_at, event.occurred_at),
                interaction_ids=state.interaction_ids | {event.interaction_id},
            )
        case ConsentChanged():
            record = ConsentRecord(granted=event.granted, source=event.source, at=event.at)
            return replace(state, consents={**state.consents, event.channel: record})
        case CustomerMerged():
            return _merged(state, event)
        case CustomerMergedInto(survivor_id=survivor_id):
            return replace(state, merged_into=survivor_id)
        case CustomerReferred(referrer_id=referrer_id):
            return replace(state, referred_by=referrer_id)
        case PersonalDataErased():
            return replace(
                state, name="", email=None, phone=None, birthday=None, attributes={}, erased=True
            )
    # A type this code does not know yet (a newer producer): it still counts as a version.
    return state


def _profile_changed(state: Customer, event: ProfileChanged) -> Customer:
    return replace(state, **event.applied_to(state))


def _merged(state: Customer, event: CustomerMerged) -> Customer:
    return replace(
        state,
        email=state.email or event.email,
        phone=state.phone or event.phone,
        birthday=state.birthday or event.birthday,
        owner_id=state.owner_id or event.owner_id,
        company_id=state.company_id or event.company_id,
        tags=tuple(sorted({*state.tags, *event.tags})),
        attributes={**event.attributes, **state.attributes},
        key_contacts={**event.key_contacts, **state.key_contacts},
        consents={**state.consents, **event.consents},
        interaction_count=state.interaction_count + event.interaction_count,
        last_interaction_at=_latest(state.last_interaction_at, event.last_interaction_at),
        absorbed=(*state.absorbed, event.duplicate_id),
    )


def _latest(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None or b is None:
        return a or b
    return max(a, b)


# --- deciding -------------------------------------------------------------------------


def existing(state: Customer | None, customer_id: str) -> Customer:
    """The customer ``customer_id``, or CustomerNotFound when its stream is empty."""
    if state is None:
        raise CustomerNotFound(customer_id)
    if state.id != customer_id:
        # Not a business rule: the handler folded the wrong stream.
        raise ValueError(f"command for {customer_id} decided on the state of {state.id}")
    return state


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
        return _register(command, state, now, definitions, others)
    customer = existing(state, command.customer_id)
    if isinstance(command, ErasePersonalData):
        return _erase(command, customer, now)
    _ensure_writable(customer)
    match command:
        case ChangeProfile():
            return _change_profile(command, customer, now, definitions, others)
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
            return _set_key_contact(command, customer, others)
        case RecordReferral():
            return _record_referral(command, customer, others)
        case RemoveKeyContact(role=role):
            _ensure_company(customer, "customer_id")
            previous = customer.key_contacts.get(role)
            if previous is None:
                return []
            return [KeyContactChanged(customer_id=customer.id, role=role,
                                      previous_contact_id=previous, contact_id=None)]
        case LogInteraction():
            return _log_interaction(command, customer, now)
        case ChangeConsent():
            return _change_consent(command, customer, now)
    raise TypeError(f"decide does not handle {type(command).__name__}")


def _ensure_writable(customer: Customer) -> None:
    # Erased first: once erased, being merged is no longer the caller's concern.
    if customer.erased:
        raise CustomerErased(customer.id)
    if customer.merged_into is not None:
        raise CustomerAlreadyMerged(customer.id, customer.merged_into)


def _ensure_company(customer: Customer, field: str) -> None:
    if customer.kind != "company":
        raise NotACompany(customer.id, field)


def _ensure_not_in_future(field: str, at: datetime, now: datetime) -> datetime:
    if at > now + CLOCK_SKEW:
        raise TimeInTheFuture(field, at)
    return at


def _ensure_born(birthday: date | None, now: datetime) -> None:
    # A day of slack: "today" in Shanghai is still "yesterday" in UTC for eight hours.
    if birthday is not None and birthday > now.date() + timedelta(days=1):
        raise TimeInTheFuture("birthday", birthday)


def _referenced(
    customer_id: str, tenant_id: str, others: Mapping[str, Customer | None]
) -> Customer:
    """Another customer the command points at, if the command may point at it."""
    other = others.get(customer_id)
    # Another tenant's customer must look exactly like one that does not exist.
    if other is None or other.tenant_id != tenant_id:
        raise CustomerNotFound(customer_id)
    _ensure_writable(other)
    return other


def _company_of_person(company_id: str, tenant_id: str,
                       others: Mapping[str, Customer | None]) -> None:
    _ensure_company(_referenced(company_id, tenant_id, others), "company_id")


def _register(
    command: RegisterCustomer,
    state: Customer | None,
    now: datetime,
    definitions: Mapping[str, CustomFieldDefinition],
    others: Mapping[str, Customer | None],
) -> list[DomainEvent]:
    if state is not None:
        raise CustomerAlreadyExists(command.customer_id)
    registered_at = _ensure_not_in_future("registered_at", command.registered_at or now, now)
    _ensure_born(command.birthday, now)
    if command.company_id is not None:
        _company_of_person(command.company_id, command.tenant_id, others)
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


def _change_profile(
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
    _ensure_born(birthday, now)
    if company_id is not None:
        if customer.kind != "person":
            raise NotAPerson(customer.id, "company_id")
        _company_of_person(company_id, customer.tenant_id, others)
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


def _set_key_contact(
    command: SetKeyContact, company: Customer, others: Mapping[str, Customer | None]
) -> list[DomainEvent]:
    _ensure_company(company, "customer_id")
    contact = _referenced(command.contact_id, company.tenant_id, others)
    if contact.kind != "person":
        raise NotAPerson(contact.id, "contact_id")
    previous = company.key_contacts.get(command.role)
    if previous == contact.id:
        return []
    return [KeyContactChanged(customer_id=company.id, role=command.role,
                              previous_contact_id=previous, contact_id=contact.id)]


def _record_referral(
    command: RecordReferral, customer: Customer, others: Mapping[str, Customer | None]
) -> list[DomainEvent]:
    if customer.referred_by == command.referrer_id:
        return []  # the same request again
    if customer.referred_by is not None:
        raise ReferralAlreadyRecorded(customer.id, customer.referred_by)
    if command.referrer_id == customer.id:
        raise InvalidReferrer("a customer cannot refer itself")
    referrer = _referenced(command.referrer_id, customer.tenant_id, others)
    if referrer.referred_by == customer.id:
        raise InvalidReferrer("was referred by this customer")
    return [CustomerReferred(customer_id=customer.id, referrer_id=referrer.id)]


def _log_interaction(
    command: LogInteraction, customer: Customer, now: datetime
) -> list[DomainEvent]:
    if command.interaction_id in customer.interaction_ids:
        return []
    occurred_at = _ensure_not_in_future("occurred_at", command.occurred_at or now, now)
    return [
        InteractionLogged(
            customer_id=customer.id,
            interaction_id=command.interaction_id,
            channel=command.channel,
            direction=command.direction,
            summary=command.summary,
            by=command.by,
            occurred_at=occurred_at,
        )
    ]


def _change_consent(command: ChangeConsent, customer: Customer, now: datetime) -> list[DomainEvent]:
    at = _ensure_not_in_future("at", command.at or now, now)
    current = customer.consents.get(command.channel)
    if current is not None and (current.granted == command.granted or at < current.at):
        return []
    return [ConsentChanged(customer_id=customer.id, channel=command.channel,
                           granted=command.granted, source=command.source, at=at)]


def _erase(command: ErasePersonalData, customer: Customer, now: datetime) -> list[DomainEvent]:
    # Allowed on a merged duplicate too: its stream still holds the person's data.
    if customer.erased:
        return []
    return [PersonalDataErased(customer_id=customer.id, erased_at=now, by=command.by)]


# --- merging duplicates ---------------------------------------------------------------


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
    _ensure_writable(survivor)
    _ensure_writable(duplicate)
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


# --- custom fields --------------------------------------------------------------------


def fold_custom_fields(events: Iterable[DomainEvent]) -> dict[str, CustomFieldDefinition]:
    definitions: dict[str, CustomFieldDefinition] = {}
    for event in events:
        if isinstance(event, CustomFieldDefined):
            definitions[event.name] = CustomFieldDefinition(
                name=event.name, type=event.type, required=event.required,
                choices=tuple(event.choices),
            )
    return definitions


def decide_custom_field(
    command: DefineCustomField,
    definitions: Mapping[str, CustomFieldDefinition],
    now: datetime,
) -> list[DomainEvent]:
    """Define a field, or redefine whether it is required and its choices."""
    wanted = CustomFieldDefinition(
        name=command.name, type=command.type, required=command.required,
        choices=tuple(command.choices),
    )
    current = definitions.get(command.name)
    if current == wanted:
        return []
    if current is not None and current.type != wanted.type:
        raise CustomFieldAlreadyDefined(current.name, current.type)
    return [CustomFieldDefined(name=command.name, type=command.type,
                               required=command.required, choices=command.choices)]


def validate_attributes(
    attributes: Mapping[str, object],
    definitions: Mapping[str, CustomFieldDefinition],
    *,
    require_all: bool = True,
) -> dict[str, AttributeValue]:
    """``attributes`` checked against the tenant's definitions and normalised.

    Text is trimmed, numbers become int or float (numeric strings from imports
    too), dates become "YYYY-MM-DD", a choice takes its defined spelling. None
    or blank means "not given". With ``require_all`` every required field must
    be given. Raises InvalidAttribute naming the first offending field.
    """
    values: dict[str, AttributeValue] = {}
    for name, raw in attributes.items():
        definition = definitions.get(name)
        if definition is None:
            raise InvalidAttribute(name, "is not a custom field of this tenant")
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            continue
        values[name] = _ATTRIBUTE_PARSERS[definition.type](name, raw, definition)
    if require_all:
        for definition in definitions.values():
            if definition.required and definition.name not in values:
                raise InvalidAttribute(definition.name, "is required")
    return values


def _text(name: str, raw: object, definition: CustomFieldDefinition) -> AttributeValue:
    if not isinstance(raw, str):
        raise InvalidAttribute(name, "must be text")
    text = raw.strip()
    if len(text) > MAX_TEXT_ATTRIBUTE:
        raise InvalidAttribute(name, f"has at most {MAX_TEXT_ATTRIBUTE} characters")
    return text


def _number(name: str, raw: object, definition: CustomFieldDefinition) -> AttributeValue:
    number: int | float
    # bool is an int in Python, but true is not a number a user meant.
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise InvalidAttribute(name, "must be a number")
    if isinstance(raw, str):
        if len(raw) > 100:  # parsing a long digit string is quadratic; no figure needs it
            raise InvalidAttribute(name, f"has at most {MAX_NUMBER_DIGITS} digits before the point")
        try:
            number = int(raw.strip())
        except ValueError:
            try:
                number = float(raw.strip())
            except ValueError:
                raise InvalidAttribute(name, "must be a number") from None
    else:
        number = raw
    if isinstance(number, float) and not math.isfinite(number):
        raise InvalidAttribute(name, "must be a finite number")
    if abs(number) >= 10**MAX_NUMBER_DIGITS:
        raise InvalidAttribute(name, f"has at most {MAX_NUMBER_DIGITS} digits before the point")
    return number


def _date(name: str, raw: object, definition: CustomFieldDefinition) -> AttributeValue:
    if isinstance(raw, datetime):
        raise InvalidAttribute(name, "must be a date without a time")
    if isinstance(raw, date):
        return raw.isoformat()
    if isinstance(raw, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw.strip()):
        try:
            return date.fromisoformat(raw.strip()).isoformat()
        except ValueError:
            pass
    raise InvalidAttribute(name, "must be a date (YYYY-MM-DD)")


def _choice(name: str, raw: object, definition: CustomFieldDefinition) -> AttributeValue:
    if isinstance(raw, str):
        wanted = " ".join(raw.split()).casefold()
        for choice in definition.choices:
            if choice.casefold() == wanted:
                return choice
    raise InvalidAttribute(name, f"must be one of {', '.join(definition.choices)}")


_ATTRIBUTE_PARSERS: dict[
    CustomFieldType, Callable[[str, object, CustomFieldDefinition], AttributeValue]
] = {"text": _text, "number": _number, "date": _date, "choice": _choice}


# --- search keys ----------------------------------------------------------------------

_HAN_CHARS = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_HAN = re.compile(f"[{_HAN_CHARS}]")
# Runs of Chinese, or words of anything else; punctuation and spaces separate them.
_HAN_RUN_OR_WORD = re.compile(f"[{_HAN_CHARS}]+|[^\\W_{_HAN_CHARS}]+")
# Surnames whose reading differs from the character's everyday one (曾 is zeng, not
# ceng); a name starting with one gets keys for both readings, as it may not be a surname.
_SURNAME_READINGS = {
    "曾": "zeng", "单": "shan", "解": "xie", "区": "ou", "仇": "qiu", "朴": "piao",
    "查": "zha", "覃": "qin", "翟": "zhai", "缪": "miao", "乐": "yue", "盖": "ge",
    "种": "chong", "召": "shao", "繁": "po", "秘": "bi",
}


def search_keys(name: str) -> list[str]:
    """Keys a search box can match the name by, the lowercased name itself first.

    Chinese: full pinyin with and without spaces and the initials, so "zw",
    "zhangwei" and "zhang wei" all find 张伟. Latin: lowercased, and without
    accents when it has any ("José" is also "jose").
    """
    text = " ".join(unicodedata.normalize("NFKC", name).lower().split())
    if not text:
        return []
    keys = [text]
    if not _HAN.search(text):
        keys.append(_without_accents(text))
        return _unique(keys)
    for syllables in _readings(text):
        keys += [" ".join(syllables), "".join(syllables), "".join(s[0] for s in syllables)]
    return _unique(keys)


def _readings(text: str) -> list[list[str]]:
    everyday = _syllables(text)
    surname = _SURNAME_READINGS.get(text[0])
    if surname is None or not everyday or everyday[0] == surname:
        return [everyday]
    return [[surname, *everyday[1:]], everyday]


def _syllables(text: str) -> list[str]:
    # Whole runs go to pypinyin so that its phrase dictionary picks the reading in context.
    syllables: list[str] = []
    for token in _HAN_RUN_OR_WORD.findall(text):
        if _HAN.match(token):
            syllables += _pinyin_of(token)
        else:
            syllables.append(_without_accents(token))
    return syllables


@functools.lru_cache(maxsize=65_536)
def _pinyin_of(han: str) -> tuple[str, ...]:
    # Names repeat (张伟 is shared by hundreds of thousands); pypinyin's converter is
    # the slowest step of a registration, and its answer for a run never changes.
    return tuple(lazy_pinyin(han, style=Style.NORMAL))


def _without_accents(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _unique(keys: list[str]) -> list[str]:
    return list(dict.fromkeys(k for k in keys if k))
