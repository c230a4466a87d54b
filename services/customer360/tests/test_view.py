"""How each contacts event changes the 360 view: given a view, when an event, then a view."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

from libs.events.catalog import DomainEvent
from libs.events.catalog.contacts import (
    ConsentChanged,
    ConsentRecord,
    CustomerMerged,
    CustomerMergedInto,
    CustomerReferred,
    CustomerRegistered,
    CustomerTagged,
    CustomerUntagged,
    CustomFieldDefined,
    InteractionLogged,
    KeyContactChanged,
    OwnerChanged,
    PersonalDataErased,
    ProfileChanged,
)
from services.customer360.domain.from_contacts import CONTACTS
from services.customer360.domain.view import (
    CustomerView,
    Fact,
    ForgetPersonalData,
    Outcome,
    Redirect,
    empty_sections,
)

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def fact(sequence: int = 1) -> Fact:
    return Fact(
        event_id=f"e-{sequence}",
        type="t",
        time=T0 + timedelta(minutes=sequence),
        stream_id="c-1",
        sequence=sequence,
        topic="crm.contacts.events",
        partition=0,
        offset=sequence - 1,
    )


def apply(view: CustomerView, event: DomainEvent, sequence: int = 1) -> Outcome:
    registered = CONTACTS.applier_for(event)
    assert registered is not None, f"no applier for {type(event).__name__}"
    return registered.apply(view, event, fact(sequence))


def fold(events: Sequence[DomainEvent]) -> CustomerView:
    view = CustomerView("acme", "c-1")
    for sequence, event in enumerate(events, start=1):
        view = apply(view, event, sequence).view
    return view


def registration(**changes: object) -> CustomerRegistered:
    fields: dict[str, object] = {
        "customer_id": "c-1",
        "tenant_id": "acme",
        "kind": "person",
        "name": "Li Na",
        "email": "li.na@example.com",
        "phone": "+8613800138000",
        "birthday": date(1990, 5, 17),
        "owner_id": "u-sales",
        "tags": ["vip"],
        "attributes": {"source": "fair"},
        "registered_at": T0,
    }
    fields.update(changes)
    return CustomerRegistered.model_validate(fields)


def test_a_registration_fills_the_profile_tags_and_owner() -> None:
    view = fold([registration()])

    assert view.registered
    assert view.profile.name == "Li Na"
    assert view.profile.email == "li.na@example.com"
    assert view.profile.attributes == {"source": "fair"}
    assert view.tags == ("vip",)
    assert view.owner_id == "u-sales"
    assert view.sections == empty_sections()


def test_a_profile_change_patches_only_what_it_names_and_clears_what_it_lists() -> None:
    given = [registration()]

    outcome = apply(
        fold(given),
        ProfileChanged(customer_id="c-1", name="Li Na Wang", cleared=["phone"],
                       attributes={"tier": "gold"}, attributes_removed=["source"]),
    )

    profile = outcome.view.profile
    assert (profile.name, profile.email, profile.phone) == ("Li Na Wang", "li.na@example.com", None)
    assert profile.attributes == {"tier": "gold"}
    assert outcome.entry is not None
    assert "Li Na Wang" in outcome.entry.summary
    assert "Li Na" not in outcome.entry.redacted_summary
    assert "name" in outcome.entry.redacted_summary


def test_tags_owner_and_key_contacts_follow_their_events() -> None:
    view = fold(
        [
            registration(kind="company", name="Acme Ltd", tags=[]),
            CustomerTagged(customer_id="c-1", tag="renewal"),
            CustomerTagged(customer_id="c-1", tag="at-risk"),
            CustomerUntagged(customer_id="c-1", tag="renewal"),
            OwnerChanged(customer_id="c-1", from_owner_id="u-sales", to_owner_id="u-lead"),
            KeyContactChanged(customer_id="c-1", role="buyer", previous_contact_id=None,
                              contact_id="p-1"),
            KeyContactChanged(customer_id="c-1", role="it", previous_contact_id=None,
                              contact_id="p-2"),
            KeyContactChanged(customer_id="c-1", role="it", previous_contact_id="p-2",
                              contact_id=None),
        ]
    )

    assert view.tags == ("at-risk",)
    assert view.owner_id == "u-lead"
    assert view.key_contacts == {"buyer": "p-1"}


def test_an_interaction_is_counted_kept_and_its_free_text_is_personal() -> None:
    logged = InteractionLogged(customer_id="c-1", interaction_id="i-1", channel="phone",
                               direction="inbound", summary="Li Na asked about the renewal",
                               by="u-sales", occurred_at=T0)

    outcome = apply(fold([registration()]), logged, 2)

    assert outcome.view.interaction_count == 1
    assert outcome.view.last_interaction_at == T0
    assert [i.interaction_id for i in outcome.view.recent_interactions] == ["i-1"]
    assert outcome.entry is not None
    assert "asked about the renewal" in outcome.entry.summary
    assert outcome.entry.redacted_summary == "Inbound phone by u-sales"


def test_the_latest_consent_by_its_time_wins_whatever_the_order_of_arrival() -> None:
    later = ConsentChanged(customer_id="c-1", channel="email", granted=False,
                           source="unsubscribe link", at=T0 + timedelta(days=2))
    earlier = ConsentChanged(customer_id="c-1", channel="email", granted=True,
                             source="web form", at=T0 + timedelta(days=1))

    view = fold([registration(), later, earlier])

    assert view.consents["email"].granted is False
    assert view.consents["email"].source == "unsubscribe link"


def test_a_merge_absorbs_only_what_the_survivor_lacked_and_redirects_the_duplicate() -> None:
    survivor = fold([registration(phone=None, tags=["vip"], attributes={"source": "fair"})])
    absorbed = CustomerMerged(
        customer_id="c-1", duplicate_id="c-2", phone="+8613900139000", tags=["wechat"],
        attributes={"source": "import", "size": "10"}, key_contacts={"buyer": "p-9"},
        consents={"sms": ConsentRecord(granted=True, source="form", at=T0)},
        interaction_count=3, last_interaction_at=T0 + timedelta(days=1),
    )

    outcome = apply(survivor, absorbed, 2)

    view = outcome.view
    assert view.profile.phone == "+8613900139000"
    assert view.profile.attributes == {"source": "fair", "size": "10"}
    assert view.tags == ("vip", "wechat")
    assert view.key_contacts == {"buyer": "p-9"}
    assert view.consents["sms"].granted is True
    assert view.interaction_count == 3
    assert view.absorbed == ("c-2",)
    assert outcome.effects == (Redirect("c-2", "c-1"),)


def test_the_duplicate_learns_its_survivor() -> None:
    outcome = apply(fold([registration()]), CustomerMergedInto(customer_id="c-1",
                                                               survivor_id="c-9"), 2)

    assert outcome.view.merged_into == "c-9"
    assert outcome.effects == (Redirect("c-1", "c-9"),)


def test_erasure_drops_every_personal_field_and_keeps_the_rest() -> None:
    view = fold([registration(), CustomerTagged(customer_id="c-1", tag="churned")])

    outcome = apply(view, PersonalDataErased(customer_id="c-1", erased_at=T0, by="u-admin"), 3)

    erased = outcome.view
    assert erased.erased
    assert (erased.profile.name, erased.profile.email, erased.profile.phone) == ("", None, None)
    assert erased.profile.birthday is None
    assert erased.profile.attributes == {}
    assert erased.profile.kind == "person"
    assert erased.tags == ("churned", "vip")
    assert outcome.effects == (ForgetPersonalData(),)


def test_a_headline_is_bounded() -> None:
    long = "x" * 5000
    outcome = apply(fold([registration()]), CustomerTagged(customer_id="c-1", tag=long), 2)

    assert outcome.entry is not None
    assert len(outcome.entry.summary) == 300


def test_tenant_level_events_have_no_applier() -> None:
    assert CONTACTS.applier_for(CustomFieldDefined(name="size", type="text")) is None



def test_a_timeline_line_is_dated_when_it_happened_not_when_it_was_recorded() -> None:
    # History imported from an old system: recorded today (the fact's time, T0 + n
    # minutes), but it happened years ago, and the events say when.
    years_ago = datetime(2019, 6, 3, 14, 30, tzinfo=UTC)
    call = years_ago + timedelta(days=400)
    decided = years_ago + timedelta(days=500)
    events: list[DomainEvent] = [
        registration(registered_at=years_ago),
        InteractionLogged(customer_id="c-1", interaction_id="i-1", channel="phone",
                          direction="outbound", summary="", by="u-1", occurred_at=call),
        ConsentChanged(customer_id="c-1", channel="email", granted=False, source="import",
                       at=decided),
        CustomerTagged(customer_id="c-1", tag="imported"),
    ]
    view = CustomerView("acme", "c-1")
    times = []
    for sequence, event in enumerate(events, start=1):
        outcome = apply(view, event, sequence)
        assert outcome.entry is not None
        times.append(outcome.entry.time)
        view = outcome.view

    # What carries no time of its own happened when it was recorded.
    assert times == [years_ago, call, decided, fact(4).time]


def test_an_erasure_is_dated_by_its_own_time() -> None:
    erased_at = T0 + timedelta(days=3)
    outcome = apply(fold([registration()]), PersonalDataErased(
        customer_id="c-1", by="u-dpo", erased_at=erased_at), sequence=2)
    assert outcome.entry is not None
    assert outcome.entry.time == erased_at


def test_a_referral_is_a_line_on_the_timeline() -> None:
    view = fold([registration()])
    outcome = apply(view, CustomerReferred(customer_id="c-1", referrer_id="c-9"), 2)
    assert outcome.entry is not None
    assert outcome.entry.summary == "Referred by customer c-9"
