"""The Customer aggregate's state: a customer (a person or a company) is the fold of
its stream's events. ``evolve`` checks no rule: what was recorded has happened."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from types import MappingProxyType

from libs.events.catalog import DomainEvent
from libs.events.catalog.contacts import (
    AttributeValue,
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
    InteractionLogged,
    KeyContactChanged,
    OwnerChanged,
    PersonalDataErased,
    ProfileChanged,
)


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


NO_OTHERS: Mapping[str, Customer | None] = MappingProxyType({})


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
