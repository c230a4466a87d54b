"""What the contacts service's events do to the 360 view (``crm.contacts.events``).

The appliers mirror the contacts service's own rules (a merge absorbs only what
the survivor lacked, the latest consent by ``at`` wins), read from the events
alone: a projector never imports the service that publishes.

Timeline lines carry a second, redacted form without the customer's name,
email, phone, birthday, attribute values or the free text of an interaction,
which is all an erased customer's timeline keeps.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from libs.events.catalog.contacts import (
    ConsentChanged,
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
    catalog,
)
from libs.events.kafka import service_topic
from services.customer360.domain.view import (
    Consent,
    CustomerView,
    Fact,
    ForgetPersonalData,
    Interaction,
    Outcome,
    Profile,
    Redirect,
    Source,
    forget,
    with_interaction,
)

CONTACTS = Source("contacts", service_topic("contacts"), catalog, customer_streams=True)


@CONTACTS.on(CustomerRegistered)
def registered(view: CustomerView, event: CustomerRegistered, fact: Fact) -> Outcome:
    profile = Profile(
        kind=event.kind,
        name=event.name,
        email=event.email,
        phone=event.phone,
        birthday=event.birthday,
        company_id=event.company_id,
        attributes=dict(event.attributes),
        registered_at=event.registered_at,
    )
    view = replace(
        view,
        profile=profile,
        tags=_sorted_tags(view.tags, event.tags),
        owner_id=event.owner_id,
    )
    return Outcome(
        view,
        fact.entry(
            f"Registered {event.kind} {event.name}",
            f"Registered {event.kind}",
            happened_at=event.registered_at,
        ),
    )


@CONTACTS.on(ProfileChanged)
def profile_changed(view: CustomerView, event: ProfileChanged, fact: Fact) -> Outcome:
    profile = replace(view.profile, **event.applied_to(view.profile))
    # Values only for the personal fields a reader wants to see; names for the rest.
    shown: list[str] = []
    named: list[str] = []
    for label, value in (("name", event.name), ("email", event.email), ("phone", event.phone)):
        if value is not None:
            shown.append(f"{label} {value}")
            named.append(label)
    if event.birthday is not None:
        shown.append("birthday")
        named.append("birthday")
    if event.company_id is not None:
        shown.append(f"company {event.company_id}")
        named.append(f"company {event.company_id}")
    for name in event.cleared:
        shown.append(f"{name} removed")
        named.append(f"{name} removed")
    changed_attributes = sorted({*event.attributes, *event.attributes_removed})
    if changed_attributes:
        shown.append("attributes " + ", ".join(changed_attributes))
        named.append("attributes " + ", ".join(changed_attributes))
    return Outcome(
        replace(view, profile=profile),
        fact.entry(
            "Profile changed: " + ("; ".join(shown) or "nothing"),
            "Profile changed: " + ("; ".join(named) or "nothing"),
        ),
    )


@CONTACTS.on(CustomerTagged)
def tagged(view: CustomerView, event: CustomerTagged, fact: Fact) -> Outcome:
    view = replace(view, tags=_sorted_tags(view.tags, [event.tag]))
    return Outcome(view, fact.entry(f"Tagged {event.tag}"))


@CONTACTS.on(CustomerUntagged)
def untagged(view: CustomerView, event: CustomerUntagged, fact: Fact) -> Outcome:
    view = replace(view, tags=tuple(t for t in view.tags if t != event.tag))
    return Outcome(view, fact.entry(f"Untagged {event.tag}"))


@CONTACTS.on(OwnerChanged)
def owner_changed(view: CustomerView, event: OwnerChanged, fact: Fact) -> Outcome:
    if event.to_owner_id is None:
        line = f"Owner {event.from_owner_id} removed; customer back in the unassigned pool"
    elif event.from_owner_id is None:
        line = f"Owner set to {event.to_owner_id}"
    else:
        line = f"Owner changed from {event.from_owner_id} to {event.to_owner_id}"
    return Outcome(replace(view, owner_id=event.to_owner_id), fact.entry(line))


@CONTACTS.on(CustomerReferred)
def customer_referred(view: CustomerView, event: CustomerReferred, fact: Fact) -> Outcome:
    # A line of its own, and the view reaches the contacts stream's version (?min_version).
    return Outcome(view, fact.entry(f"Referred by customer {event.referrer_id}"))


@CONTACTS.on(KeyContactChanged)
def key_contact_changed(view: CustomerView, event: KeyContactChanged, fact: Fact) -> Outcome:
    key_contacts = {r: c for r, c in view.key_contacts.items() if r != event.role}
    if event.contact_id is None:
        line = f"Key contact for {event.role} vacated (was {event.previous_contact_id})"
    else:
        key_contacts[event.role] = event.contact_id
        line = f"Key contact for {event.role} is now {event.contact_id}"
        if event.previous_contact_id:
            line += f" (was {event.previous_contact_id})"
    return Outcome(replace(view, key_contacts=key_contacts), fact.entry(line))


@CONTACTS.on(InteractionLogged)
def interaction_logged(view: CustomerView, event: InteractionLogged, fact: Fact) -> Outcome:
    interaction = Interaction(
        interaction_id=event.interaction_id,
        channel=event.channel,
        direction=event.direction,
        summary=event.summary,
        by=event.by,
        occurred_at=event.occurred_at,
    )
    view = replace(
        view,
        interaction_count=view.interaction_count + 1,
        last_interaction_at=_latest(view.last_interaction_at, event.occurred_at),
        recent_interactions=with_interaction(view.recent_interactions, interaction),
    )
    headline = f"{event.direction.capitalize()} {event.channel} by {event.by}"
    # The free text of an interaction talks about the person: it is personal data.
    summary = f"{headline}: {event.summary}" if event.summary else headline
    return Outcome(view, fact.entry(summary, headline, happened_at=event.occurred_at))


@CONTACTS.on(CustomerMerged)
def merged(view: CustomerView, event: CustomerMerged, fact: Fact) -> Outcome:
    # The event lists only what the survivor lacked; "or" keeps the survivor's own
    # value should the view have learnt one the service did not know of at the time.
    old = view.profile
    profile = replace(
        old,
        email=old.email or event.email,
        phone=old.phone or event.phone,
        birthday=old.birthday or event.birthday,
        company_id=old.company_id or event.company_id,
        attributes={**event.attributes, **old.attributes},
    )
    consents = dict(view.consents)
    for channel, record in event.consents.items():
        absorbed = Consent(granted=record.granted, source=record.source, at=record.at)
        consents[channel] = _newer(consents.get(channel), absorbed)
    view = replace(
        view,
        profile=profile,
        owner_id=view.owner_id or event.owner_id,
        tags=_sorted_tags(view.tags, event.tags),
        key_contacts={**event.key_contacts, **view.key_contacts},
        consents=consents,
        interaction_count=view.interaction_count + event.interaction_count,
        last_interaction_at=_latest(view.last_interaction_at, event.last_interaction_at),
        absorbed=tuple(dict.fromkeys((*view.absorbed, event.duplicate_id))),
    )
    taken = [
        name
        for name, value in (
            ("email", event.email),
            ("phone", event.phone),
            ("birthday", event.birthday),
            ("owner", event.owner_id),
            ("company", event.company_id),
        )
        if value is not None
    ]
    for name, values in (
        ("tags", event.tags),
        ("attributes", event.attributes),
        ("key contacts", event.key_contacts),
        ("consents", event.consents),
    ):
        if values:
            taken.append(f"{len(values)} {name}")
    line = f"Absorbed duplicate {event.duplicate_id}"
    if taken:
        line += " (took " + ", ".join(taken) + ")"
    return Outcome(view, fact.entry(line), (Redirect(event.duplicate_id, event.customer_id),))


@CONTACTS.on(CustomerMergedInto)
def merged_into(view: CustomerView, event: CustomerMergedInto, fact: Fact) -> Outcome:
    return Outcome(
        replace(view, merged_into=event.survivor_id),
        fact.entry(f"Merged into {event.survivor_id}"),
        (Redirect(event.customer_id, event.survivor_id),),
    )


@CONTACTS.on(ConsentChanged)
def consent_changed(view: CustomerView, event: ConsentChanged, fact: Fact) -> Outcome:
    decision = Consent(granted=event.granted, source=event.source, at=event.at)
    consents = dict(view.consents)
    consents[event.channel] = _newer(consents.get(event.channel), decision)
    verb = "granted" if event.granted else "withdrawn"
    return Outcome(
        replace(view, consents=consents),
        fact.entry(f"Consent to {event.channel} {verb} ({event.source})", happened_at=event.at),
    )


@CONTACTS.on(PersonalDataErased)
def personal_data_erased(view: CustomerView, event: PersonalDataErased, fact: Fact) -> Outcome:
    return Outcome(
        forget(view, event.erased_at),
        fact.entry(f"Personal data erased by {event.by}", happened_at=event.erased_at),
        (ForgetPersonalData(),),
    )


def _sorted_tags(current: tuple[str, ...], more: list[str]) -> tuple[str, ...]:
    return tuple(sorted({*current, *more}))


def _latest(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None or b is None:
        return a or b
    return max(a, b)


def _newer(current: Consent | None, decision: Consent) -> Consent:
    """The latest decision by ``at`` is the customer's wish, whatever order they arrive in."""
    if current is not None and current.at > decision.at:
        return current
    return decision
