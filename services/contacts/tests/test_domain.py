"""The contacts rules, as specifications: given these events, when this command, then
these events or this error. No database, no clock: ``now`` is ``T0``."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from libs.events.catalog import DomainEvent
from libs.events.catalog.contacts import (
    ConsentChanged,
    ConsentRecord,
    CustomerMerged,
    CustomerMergedInto,
    CustomerRegistered,
    CustomerTagged,
    CustomerUntagged,
    CustomFieldDefined,
    InteractionLogged,
    KeyContactChanged,
    OwnerChanged,
    PersonalDataErased,
    ProfileChanged,
    catalog,
)
from services.contacts.commands import (
    ChangeConsent,
    ChangeOwner,
    ChangeProfile,
    CustomerCommand,
    DefineCustomField,
    ErasePersonalData,
    LogInteraction,
    RegisterCustomer,
    RemoveKeyContact,
    SetKeyContact,
    TagCustomer,
    UntagCustomer,
    normalise_phone,
)
from services.contacts.domain import (
    CannotMergeDifferentKinds,
    CannotMergeIntoItself,
    Customer,
    CustomerAlreadyExists,
    CustomerAlreadyMerged,
    CustomerErased,
    CustomerNotFound,
    CustomFieldAlreadyDefined,
    CustomFieldDefinition,
    DuplicateCustomer,
    InvalidAttribute,
    NotACompany,
    NotAPerson,
    TimeInTheFuture,
    decide,
    decide_custom_field,
    decide_merge,
    evolve,
    fold,
    fold_custom_fields,
    references,
    search_keys,
    validate_attributes,
)

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
TENANT = "acme"


def registered(customer_id: str = "c-1", **fields: Any) -> CustomerRegistered:
    data: dict[str, Any] = {
        "customer_id": customer_id, "tenant_id": TENANT, "kind": "person", "name": "张伟",
        "registered_at": T0 - timedelta(days=30),
    }
    return CustomerRegistered(**(data | fields))


def company(customer_id: str = "co-1", **fields: Any) -> CustomerRegistered:
    return registered(customer_id, kind="company", name="阿里巴巴", **fields)


def given(*events: DomainEvent) -> Customer:
    state = fold(events)
    assert state is not None
    return state


def invalid_fields(exc: pytest.ExceptionInfo[ValidationError]) -> list[str]:
    return [".".join(str(p) for p in error["loc"]) for error in exc.value.errors()]


INDUSTRY = CustomFieldDefinition("industry", "choice", choices=("Retail", "Finance"))
SEATS = CustomFieldDefinition("seats", "number")
RENEWAL = CustomFieldDefinition("renewal", "date")
NOTE = CustomFieldDefinition("note", "text")
REGION = CustomFieldDefinition("region", "text", required=True)
DEFINITIONS = {d.name: d for d in (INDUSTRY, SEATS, RENEWAL, NOTE)}


# --- input normalisation (commands) ----------------------------------------------------


def test_a_mainland_mobile_without_country_code_becomes_e164() -> None:
    command = RegisterCustomer(
        customer_id="c-1", tenant_id=TENANT, kind="person", name="张伟", phone="138 0013 8000"
    )

    assert command.phone == "+8613800138000"


def test_a_number_with_its_country_code_keeps_its_country() -> None:
    assert normalise_phone("+44 20 7946 0958", "CN") == "+442079460958"


def test_the_region_for_local_numbers_comes_from_the_validation_context() -> None:
    data = {"customer_id": "c-1", "tenant_id": TENANT, "kind": "person", "name": "Jane",
            "phone": "020 7946 0958"}

    command = RegisterCustomer.model_validate(data, context={"phone_region": "GB"})

    assert command.phone == "+442079460958"


@pytest.mark.parametrize("phone", ["12345", "not a number", "+86 138 0013 8000 ext 12"])
def test_an_invalid_phone_is_refused_naming_the_field(phone: str) -> None:
    with pytest.raises(ValidationError) as raised:
        ChangeProfile(customer_id="c-1", phone=phone)

    assert invalid_fields(raised) == ["phone"]


def test_an_email_is_validated_and_normalised() -> None:
    command = ChangeProfile(customer_id="c-1", email="  Zhang.Wei@Example.COM ")

    assert command.email == "Zhang.Wei@example.com"


@pytest.mark.parametrize("email", ["zhang.wei", "zhang@wei", "zhang wei@example.com"])
def test_an_invalid_email_is_refused_naming_the_field(email: str) -> None:
    with pytest.raises(ValidationError) as raised:
        RegisterCustomer(customer_id="c-1", tenant_id=TENANT, kind="person", name="张伟",
                         email=email)

    assert invalid_fields(raised) == ["email"]


def test_blank_contact_details_count_as_absent() -> None:
    command = RegisterCustomer(customer_id="c-1", tenant_id=TENANT, kind="person",
                               name="张伟", email=" ", phone="")

    assert (command.email, command.phone) == (None, None)


def test_names_are_trimmed_and_a_blank_name_is_refused() -> None:
    command = RegisterCustomer(customer_id="c-1", tenant_id=TENANT, kind="person",
                               name="  John   Smith ")
    assert command.name == "John Smith"

    with pytest.raises(ValidationError) as raised:
        RegisterCustomer(customer_id="c-1", tenant_id=TENANT, kind="person", name="   ")
    assert invalid_fields(raised) == ["name"]


def test_tags_are_trimmed_lowercased_unique_and_sorted() -> None:
    command = TagCustomer(customer_id="c-1", tags=[" VIP", "vip ", "Key  Account", "b2b"])

    assert command.tags == ["b2b", "key account", "vip"]


def test_a_blank_tag_is_refused() -> None:
    with pytest.raises(ValidationError) as raised:
        TagCustomer(customer_id="c-1", tags=["vip", " "])

    assert invalid_fields(raised) == ["tags"]


def test_only_a_person_belongs_to_a_company() -> None:
    with pytest.raises(ValidationError) as raised:
        RegisterCustomer(customer_id="co-2", tenant_id=TENANT, kind="company", name="Acme",
                         company_id="co-1")

    assert invalid_fields(raised) == ["company_id"]


def test_a_customer_is_a_person_or_a_company() -> None:
    with pytest.raises(ValidationError) as raised:
        RegisterCustomer.model_validate(
            {"customer_id": "c-1", "tenant_id": TENANT, "kind": "robot", "name": "R2"}
        )

    assert invalid_fields(raised) == ["kind"]


def test_a_misspelt_field_is_refused_not_ignored() -> None:
    with pytest.raises(ValidationError) as raised:
        ChangeProfile.model_validate({"customer_id": "c-1", "emial": "a@example.com"})

    assert invalid_fields(raised) == ["emial"]


def test_a_profile_change_cannot_remove_the_name() -> None:
    with pytest.raises(ValidationError) as raised:
        ChangeProfile.model_validate({"customer_id": "c-1", "name": None})

    assert invalid_fields(raised) == ["name"]


def test_a_birthday_before_1900_is_taken_for_a_typo() -> None:
    with pytest.raises(ValidationError) as raised:
        ChangeProfile(customer_id="c-1", birthday=date(1890, 1, 1))

    assert invalid_fields(raised) == ["birthday"]


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"name": "Industry Code", "type": "text"}, "name"),
        ({"name": "industry", "type": "choice"}, "choices"),
        ({"name": "seats", "type": "number", "choices": ["1"]}, "choices"),
        ({"name": "industry", "type": "colour"}, "type"),
    ],
)
def test_a_custom_field_definition_must_make_sense(data: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as raised:
        DefineCustomField.model_validate(data)

    assert invalid_fields(raised) == [field]


# --- registration ----------------------------------------------------------------------


def test_registering_a_customer() -> None:
    command = RegisterCustomer(
        customer_id="c-1", tenant_id=TENANT, kind="person", name="张伟",
        email="zw@example.com", phone="13800138000", birthday=date(1990, 5, 1),
        owner_id="u-1", tags=["VIP"], attributes={"industry": "retail"},
    )

    events = decide(command, None, T0, definitions=DEFINITIONS)

    assert events == [
        CustomerRegistered(
            customer_id="c-1", tenant_id=TENANT, kind="person", name="张伟",
            email="zw@example.com", phone="+8613800138000", birthday=date(1990, 5, 1),
            owner_id="u-1", tags=["vip"], attributes={"industry": "Retail"},
            company_id=None, registered_at=T0,
        )
    ]
    customer = given(*events)
    assert (customer.id, customer.tenant_id, customer.version) == ("c-1", TENANT, 1)
    assert customer.tags == ("vip",)


def test_a_migration_keeps_the_historic_registration_date() -> None:
    since = datetime(2015, 7, 1, tzinfo=UTC)
    command = RegisterCustomer(customer_id="c-1", tenant_id=TENANT, kind="person",
                               name="张伟", registered_at=since)

    [event] = decide(command, None, T0)

    assert isinstance(event, CustomerRegistered)
    assert event.registered_at == since


def test_a_registration_in_the_future_is_refused() -> None:
    command = RegisterCustomer(customer_id="c-1", tenant_id=TENANT, kind="person",
                               name="张伟", registered_at=T0 + timedelta(days=1))

    with pytest.raises(TimeInTheFuture) as raised:
        decide(command, None, T0)

    assert raised.value.field == "registered_at"


def test_a_birthday_in_the_future_is_refused() -> None:
    command = RegisterCustomer(customer_id="c-1", tenant_id=TENANT, kind="person",
                               name="张伟", birthday=date(2030, 1, 1))

    with pytest.raises(TimeInTheFuture) as raised:
        decide(command, None, T0)

    assert raised.value.field == "birthday"


def test_a_customer_cannot_be_registered_twice() -> None:
    command = RegisterCustomer(customer_id="c-1", tenant_id=TENANT, kind="person", name="张伟")

    with pytest.raises(CustomerAlreadyExists):
        decide(command, given(registered("c-1")), T0)


def test_a_person_registered_at_a_company_needs_that_company_loaded() -> None:
    command = RegisterCustomer(customer_id="c-1", tenant_id=TENANT, kind="person",
                               name="张伟", company_id="co-1")
    assert references(command) == {"co-1"}

    [event] = decide(command, None, T0, others={"co-1": given(company("co-1"))})
    assert isinstance(event, CustomerRegistered) and event.company_id == "co-1"

    with pytest.raises(CustomerNotFound):
        decide(command, None, T0)


@pytest.mark.parametrize(
    ("the_company", "error"),
    [
        (registered("co-1"), NotACompany),
        (company("co-1", tenant_id="other-tenant"), CustomerNotFound),
    ],
)
def test_a_person_can_only_belong_to_a_company_of_the_same_tenant(
    the_company: CustomerRegistered, error: type[Exception]
) -> None:
    command = RegisterCustomer(customer_id="c-1", tenant_id=TENANT, kind="person",
                               name="张伟", company_id="co-1")

    with pytest.raises(error):
        decide(command, None, T0, others={"co-1": given(the_company)})


def test_a_person_cannot_join_a_merged_company_but_its_survivor() -> None:
    merged_company = given(company("co-1"), CustomerMergedInto(customer_id="co-1",
                                                               survivor_id="co-9"))
    command = RegisterCustomer(customer_id="c-1", tenant_id=TENANT, kind="person",
                               name="张伟", company_id="co-1")

    with pytest.raises(CustomerAlreadyMerged) as raised:
        decide(command, None, T0, others={"co-1": merged_company})

    assert raised.value.survivor_id == "co-9"


def test_registration_checks_custom_attributes_naming_the_field() -> None:
    command = RegisterCustomer(customer_id="c-1", tenant_id=TENANT, kind="company",
                               name="Acme", attributes={"seats": "many"})

    with pytest.raises(InvalidAttribute) as raised:
        decide(command, None, T0, definitions=DEFINITIONS)

    assert (raised.value.attribute, raised.value.reason) == ("seats", "must be a number")


def test_an_invalid_attribute_is_reported_where_it_sits_in_the_request() -> None:
    error = InvalidAttribute("seats", "must be a number")

    assert error.status_code == 422
    assert error.body()["errors"] == [{"field": "attributes.seats",
                                       "reason": "must be a number"}]


def test_an_attribute_the_tenant_never_defined_is_refused() -> None:
    command = RegisterCustomer(customer_id="c-1", tenant_id=TENANT, kind="person",
                               name="张伟", attributes={"shoe_size": 42})

    with pytest.raises(InvalidAttribute) as raised:
        decide(command, None, T0)  # no definitions given: none exist

    assert raised.value.attribute == "shoe_size"


def test_registration_requires_the_required_custom_fields() -> None:
    command = RegisterCustomer(customer_id="c-1", tenant_id=TENANT, kind="person", name="张伟")

    with pytest.raises(InvalidAttribute) as raised:
        decide(command, None, T0, definitions={"region": REGION})

    assert (raised.value.attribute, raised.value.reason) == ("region", "is required")


# --- commands on customers that cannot take them ----------------------------------------


COMMANDS_ON_C1: list[CustomerCommand] = [
    ChangeProfile(customer_id="c-1", name="张伟伟"),
    TagCustomer(customer_id="c-1", tags=["vip"]),
    UntagCustomer(customer_id="c-1", tags=["vip"]),
    ChangeOwner(customer_id="c-1", owner_id="u-2"),
    LogInteraction(customer_id="c-1", interaction_id="i-1", channel="phone",
                   direction="outbound", by="u-1"),
    ChangeConsent(customer_id="c-1", channel="sms", granted=True, source="web form"),
]


@pytest.mark.parametrize("command", COMMANDS_ON_C1, ids=lambda c: type(c).__name__)
def test_commands_on_a_customer_that_does_not_exist_are_refused(command: CustomerCommand) -> None:
    with pytest.raises(CustomerNotFound) as raised:
        decide(command, None, T0)

    assert raised.value.customer_id == "c-1"


@pytest.mark.parametrize("command", COMMANDS_ON_C1, ids=lambda c: type(c).__name__)
def test_writes_to_a_merged_duplicate_are_refused_pointing_to_the_survivor(
    command: CustomerCommand,
) -> None:
    duplicate = given(registered("c-1"), CustomerMergedInto(customer_id="c-1", survivor_id="c-2"))

    with pytest.raises(CustomerAlreadyMerged) as raised:
        decide(command, duplicate, T0)

    assert raised.value.survivor_id == "c-2"
    assert raised.value.status_code == 409
    assert raised.value.body()["survivor_id"] == "c-2"


# --- profile ---------------------------------------------------------------------------


def test_a_profile_change_records_only_what_changed() -> None:
    customer = given(registered(email="zw@example.com", phone="+8613800138000"))

    events = decide(
        ChangeProfile(customer_id="c-1", email="zw@example.com", phone="139 0013 9000"),
        customer, T0,
    )

    assert events == [ProfileChanged(customer_id="c-1", phone="+8613900139000")]
    assert given(registered(email="zw@example.com"), *events).phone == "+8613900139000"


def test_fields_left_out_of_a_profile_change_do_not_change() -> None:
    customer = given(registered(email="zw@example.com"))

    [event] = decide(ChangeProfile(customer_id="c-1", name="张 伟"), customer, T0)

    assert event == ProfileChanged(customer_id="c-1", name="张 伟")
    assert given(registered(email="zw@example.com"), event).email == "zw@example.com"


def test_a_null_field_in_a_profile_change_removes_it() -> None:
    history = [registered(email="zw@example.com")]

    events = decide(ChangeProfile.model_validate({"customer_id": "c-1", "email": None}),
                    given(*history), T0)

    assert events == [ProfileChanged(customer_id="c-1", cleared=["email"])]
    assert given(*history, *events).email is None


def test_a_profile_change_that_changes_nothing_yields_no_events() -> None:
    customer = given(registered(email="zw@example.com"))

    assert decide(ChangeProfile(customer_id="c-1", name="张伟"), customer, T0) == []
    assert decide(ChangeProfile(customer_id="c-1"), customer, T0) == []


def test_a_company_cannot_be_given_a_company() -> None:
    with pytest.raises(NotAPerson):
        decide(ChangeProfile(customer_id="co-1", company_id="co-2"), given(company("co-1")), T0,
               others={"co-2": given(company("co-2"))})


def test_a_person_moves_to_another_company() -> None:
    command = ChangeProfile(customer_id="c-1", company_id="co-2")

    events = decide(command, given(registered(company_id="co-1")), T0,
                    others={"co-2": given(company("co-2"))})

    assert references(command) == {"co-2"}
    assert events == [ProfileChanged(customer_id="c-1", company_id="co-2")]


def test_attribute_changes_record_changed_and_removed_attributes_only() -> None:
    customer = given(registered(attributes={"seats": 10, "note": "likes tea"}))
    command = ChangeProfile.model_validate(
        {"customer_id": "c-1", "attributes": {"seats": 10, "industry": "finance", "note": None}}
    )

    events = decide(command, customer, T0, definitions=DEFINITIONS)

    assert events == [ProfileChanged(customer_id="c-1", attributes={"industry": "Finance"},
                                     attributes_removed=["note"])]
    assert given(registered(attributes={"seats": 10, "note": "likes tea"}), *events).attributes \
        == {"seats": 10, "industry": "Finance"}


def test_a_required_attribute_cannot_be_removed() -> None:
    customer = given(registered(attributes={"region": "华东"}))
    command = ChangeProfile.model_validate({"customer_id": "c-1", "attributes": {"region": None}})

    with pytest.raises(InvalidAttribute) as raised:
        decide(command, customer, T0, definitions={"region": REGION})

    assert (raised.value.attribute, raised.value.reason) == ("region", "is required")


def test_a_field_made_required_later_does_not_block_other_edits() -> None:
    customer = given(registered())  # registered before "region" became required

    events = decide(ChangeProfile(customer_id="c-1", name="张三"), customer, T0,
                    definitions={"region": REGION})

    assert events == [ProfileChanged(customer_id="c-1", name="张三")]


# --- tags and owner --------------------------------------------------------------------


def test_tagging_records_each_new_tag_once() -> None:
    customer = given(registered(tags=["vip"]))

    events = decide(TagCustomer(customer_id="c-1", tags=["VIP", "b2b"]), customer, T0)

    assert events == [CustomerTagged(customer_id="c-1", tag="b2b")]
    assert given(registered(tags=["vip"]), *events).tags == ("b2b", "vip")


def test_tagging_with_tags_already_there_yields_no_events() -> None:
    assert decide(TagCustomer(customer_id="c-1", tags=["vip"]),
                  given(registered(tags=["vip"])), T0) == []


def test_untagging_removes_only_tags_that_are_there() -> None:
    history = [registered(tags=["b2b", "vip"])]

    events = decide(UntagCustomer(customer_id="c-1", tags=["vip", "churned"]), given(*history), T0)

    assert events == [CustomerUntagged(customer_id="c-1", tag="vip")]
    assert given(*history, *events).tags == ("b2b",)


def test_changing_the_owner_records_from_and_to() -> None:
    events = decide(ChangeOwner(customer_id="c-1", owner_id="u-2"),
                    given(registered(owner_id="u-1")), T0)

    assert events == [OwnerChanged(customer_id="c-1", from_owner_id="u-1", to_owner_id="u-2")]


def test_giving_a_customer_to_its_owner_yields_no_events() -> None:
    assert decide(ChangeOwner(customer_id="c-1", owner_id="u-1"),
                  given(registered(owner_id="u-1")), T0) == []


def test_a_customer_can_return_to_the_unassigned_pool() -> None:
    history = [registered(owner_id="u-1")]

    events = decide(ChangeOwner(customer_id="c-1", owner_id=None), given(*history), T0)

    assert events == [OwnerChanged(customer_id="c-1", from_owner_id="u-1", to_owner_id=None)]
    assert given(*history, *events).owner_id is None


# --- key contacts ----------------------------------------------------------------------


def test_setting_a_key_contact_is_its_own_event() -> None:
    command = SetKeyContact(customer_id="co-1", role="Decision_Maker", contact_id="c-1")

    events = decide(command, given(company()), T0, others={"c-1": given(registered("c-1"))})

    assert references(command) == {"c-1"}
    assert events == [KeyContactChanged(customer_id="co-1", role="decision_maker",
                                        previous_contact_id=None, contact_id="c-1")]
    assert given(company(), *events).key_contacts == {"decision_maker": "c-1"}


def test_replacing_a_key_contact_says_who_it_was() -> None:
    history = [company(), KeyContactChanged(customer_id="co-1", role="decision_maker",
                                            previous_contact_id=None, contact_id="c-1")]

    events = decide(SetKeyContact(customer_id="co-1", role="decision_maker", contact_id="c-2"),
                    given(*history), T0, others={"c-2": given(registered("c-2"))})

    assert events == [KeyContactChanged(customer_id="co-1", role="decision_maker",
                                        previous_contact_id="c-1", contact_id="c-2")]


def test_the_same_key_contact_again_yields_no_events() -> None:
    history = [company(), KeyContactChanged(customer_id="co-1", role="decision_maker",
                                            previous_contact_id=None, contact_id="c-1")]

    assert decide(SetKeyContact(customer_id="co-1", role="decision_maker", contact_id="c-1"),
                  given(*history), T0, others={"c-1": given(registered("c-1"))}) == []


def test_removing_a_key_contact() -> None:
    history = [company(), KeyContactChanged(customer_id="co-1", role="purchaser",
                                            previous_contact_id=None, contact_id="c-1")]

    events = decide(RemoveKeyContact(customer_id="co-1", role="purchaser"), given(*history), T0)

    assert events == [KeyContactChanged(customer_id="co-1", role="purchaser",
                                        previous_contact_id="c-1", contact_id=None)]
    assert given(*history, *events).key_contacts == {}
    assert decide(RemoveKeyContact(customer_id="co-1", role="purchaser"),
                  given(*history, *events), T0) == []


def test_only_a_company_has_key_contacts() -> None:
    with pytest.raises(NotACompany):
        decide(SetKeyContact(customer_id="c-1", role="boss", contact_id="c-2"),
               given(registered("c-1")), T0, others={"c-2": given(registered("c-2"))})


def test_a_key_contact_is_a_person() -> None:
    with pytest.raises(NotAPerson) as raised:
        decide(SetKeyContact(customer_id="co-1", role="boss", contact_id="co-2"),
               given(company("co-1")), T0, others={"co-2": given(company("co-2"))})

    assert (raised.value.customer_id, raised.value.field) == ("co-2", "contact_id")


def test_a_key_contact_must_exist() -> None:
    with pytest.raises(CustomerNotFound) as raised:
        decide(SetKeyContact(customer_id="co-1", role="boss", contact_id="c-404"),
               given(company("co-1")), T0)

    assert raised.value.customer_id == "c-404"


# --- interactions ----------------------------------------------------------------------


def test_logging_an_interaction_now() -> None:
    command = LogInteraction(customer_id="c-1", interaction_id="i-1", channel="wechat",
                             direction="inbound", summary="  asked about renewal ", by="u-1")

    events = decide(command, given(registered()), T0)

    assert events == [InteractionLogged(customer_id="c-1", interaction_id="i-1",
                                        channel="wechat", direction="inbound",
                                        summary="asked about renewal", by="u-1", occurred_at=T0)]
    customer = given(registered(), *events)
    assert (customer.interaction_count, customer.last_interaction_at) == (1, T0)


def test_a_back_dated_interaction_does_not_move_the_last_contact_back() -> None:
    earlier = T0 - timedelta(days=3)
    history = [registered(), InteractionLogged(customer_id="c-1", interaction_id="i-1",
                                               channel="visit", direction="outbound",
                                               by="u-1", occurred_at=T0)]
    command = LogInteraction(customer_id="c-1", interaction_id="i-2", channel="phone",
                             direction="outbound", by="u-1", occurred_at=earlier)

    events = decide(command, given(*history), T0)

    assert isinstance(events[0], InteractionLogged) and events[0].occurred_at == earlier
    customer = given(*history, *events)
    assert (customer.interaction_count, customer.last_interaction_at) == (2, T0)


def test_a_retried_interaction_is_logged_once() -> None:
    history = [registered(), InteractionLogged(customer_id="c-1", interaction_id="i-1",
                                               channel="sms", direction="outbound",
                                               by="u-1", occurred_at=T0)]
    retry = LogInteraction(customer_id="c-1", interaction_id="i-1", channel="sms",
                           direction="outbound", by="u-1")

    assert decide(retry, given(*history), T0) == []


def test_an_interaction_in_the_future_is_refused() -> None:
    command = LogInteraction(customer_id="c-1", interaction_id="i-1", channel="meeting",
                             direction="outbound", by="u-1", occurred_at=T0 + timedelta(hours=2))

    with pytest.raises(TimeInTheFuture) as raised:
        decide(command, given(registered()), T0)

    assert raised.value.field == "occurred_at"


def test_a_device_clock_a_little_ahead_is_tolerated() -> None:
    command = LogInteraction(customer_id="c-1", interaction_id="i-1", channel="phone",
                             direction="inbound", by="u-1", occurred_at=T0 + timedelta(minutes=2))

    assert len(decide(command, given(registered()), T0)) == 1


# --- consent ---------------------------------------------------------------------------


def test_granting_consent() -> None:
    command = ChangeConsent(customer_id="c-1", channel="email", granted=True, source="web form")

    events = decide(command, given(registered()), T0)

    assert events == [ConsentChanged(customer_id="c-1", channel="email", granted=True,
                                     source="web form", at=T0)]
    customer = given(registered(), *events)
    assert customer.has_consent("email") and not customer.has_consent("sms")


def test_withdrawing_consent() -> None:
    history = [registered(), ConsentChanged(customer_id="c-1", channel="sms", granted=True,
                                            source="web form", at=T0 - timedelta(days=1))]

    events = decide(ChangeConsent(customer_id="c-1", channel="sms", granted=False,
                                  source="unsubscribe link"), given(*history), T0)

    assert events == [ConsentChanged(customer_id="c-1", channel="sms", granted=False,
                                     source="unsubscribe link", at=T0)]
    assert not given(*history, *events).has_consent("sms")


def test_the_same_consent_again_yields_no_events() -> None:
    history = [registered(), ConsentChanged(customer_id="c-1", channel="sms", granted=True,
                                            source="web form", at=T0 - timedelta(days=1))]

    assert decide(ChangeConsent(customer_id="c-1", channel="sms", granted=True, source="call"),
                  given(*history), T0) == []


def test_a_consent_older_than_the_current_one_changes_nothing() -> None:
    history = [registered(), ConsentChanged(customer_id="c-1", channel="sms", granted=False,
                                            source="unsubscribe link", at=T0)]
    paper_form = ChangeConsent(customer_id="c-1", channel="sms", granted=True,
                               source="paper form", at=T0 - timedelta(days=100))

    assert decide(paper_form, given(*history), T0) == []


def test_a_consent_in_the_future_is_refused() -> None:
    command = ChangeConsent(customer_id="c-1", channel="phone", granted=True, source="call",
                            at=T0 + timedelta(days=1))

    with pytest.raises(TimeInTheFuture) as raised:
        decide(command, given(registered()), T0)

    assert raised.value.field == "at"


# --- merging duplicates ----------------------------------------------------------------


def test_a_customer_cannot_be_merged_into_itself() -> None:
    with pytest.raises(CannotMergeIntoItself):
        decide_merge(given(registered("c-1")), given(registered("c-1")), T0)


def test_a_person_and_a_company_cannot_be_merged() -> None:
    with pytest.raises(CannotMergeDifferentKinds):
        decide_merge(given(registered("c-1")), given(company("co-1")), T0)


def test_another_tenants_customer_cannot_be_merged_in() -> None:
    with pytest.raises(CustomerNotFound) as raised:
        decide_merge(given(registered("c-1")), given(registered("c-2", tenant_id="other")), T0)

    assert raised.value.customer_id == "c-2"


def test_the_survivor_takes_from_the_duplicate_only_what_it_lacks() -> None:
    survivor_history = [
        registered("c-1", email="zw@example.com", tags=["vip"], attributes={"seats": 5}),
        ConsentChanged(customer_id="c-1", channel="email", granted=True, source="web form",
                       at=T0 - timedelta(days=10)),
    ]
    withdrawn = ConsentRecord(granted=False, source="unsubscribe link", at=T0 - timedelta(days=1))
    duplicate_history = [
        registered("c-2", email="old@example.com", phone="+8613800138000", owner_id="u-2",
                   tags=["b2b", "vip"], attributes={"seats": 9, "note": "met at expo"}),
        InteractionLogged(customer_id="c-2", interaction_id="i-1", channel="visit",
                          direction="outbound", by="u-2", occurred_at=T0 - timedelta(days=2)),
        ConsentChanged(customer_id="c-2", channel="email", granted=False,
                       source="unsubscribe link", at=withdrawn.at),
    ]

    for_survivor, for_duplicate = decide_merge(
        given(*survivor_history), given(*duplicate_history), T0
    )

    assert for_survivor == [
        CustomerMerged(
            customer_id="c-1", duplicate_id="c-2", phone="+8613800138000", owner_id="u-2",
            tags=["b2b"], attributes={"note": "met at expo"}, consents={"email": withdrawn},
            interaction_count=1, last_interaction_at=T0 - timedelta(days=2),
        )
    ]
    assert for_duplicate == [CustomerMergedInto(customer_id="c-2", survivor_id="c-1")]

    survivor = given(*survivor_history, *for_survivor)
    assert (survivor.email, survivor.phone, survivor.owner_id) == (
        "zw@example.com", "+8613800138000", "u-2"
    )
    assert survivor.tags == ("b2b", "vip")
    assert survivor.attributes == {"seats": 5, "note": "met at expo"}
    assert not survivor.has_consent("email")  # the more recent decision wins
    assert (survivor.interaction_count, survivor.absorbed) == (1, ("c-2",))
    assert given(*duplicate_history, *for_duplicate).merged_into == "c-1"


def test_a_company_absorbs_the_key_contacts_it_lacks_without_a_key_contact_change() -> None:
    survivor = given(company("co-1"), KeyContactChanged(customer_id="co-1", role="boss",
                                                        previous_contact_id=None, contact_id="c-1"))
    duplicate = given(
        company("co-2"),
        KeyContactChanged(customer_id="co-2", role="boss", previous_contact_id=None,
                          contact_id="c-8"),
        KeyContactChanged(customer_id="co-2", role="purchaser", previous_contact_id=None,
                          contact_id="c-9"),
    )

    [merged], _ = decide_merge(survivor, duplicate, T0)

    assert isinstance(merged, CustomerMerged)
    assert merged.key_contacts == {"purchaser": "c-9"}
    assert evolve(survivor, merged).key_contacts == {"boss": "c-1", "purchaser": "c-9"}


def test_a_retried_merge_changes_nothing() -> None:
    survivor = given(registered("c-1"), CustomerMerged(customer_id="c-1", duplicate_id="c-2"))
    duplicate = given(registered("c-2"), CustomerMergedInto(customer_id="c-2", survivor_id="c-1"))

    assert decide_merge(survivor, duplicate, T0) == ([], [])


def test_a_duplicate_merged_elsewhere_cannot_be_merged_again() -> None:
    duplicate = given(registered("c-2"), CustomerMergedInto(customer_id="c-2", survivor_id="c-3"))

    with pytest.raises(CustomerAlreadyMerged) as raised:
        decide_merge(given(registered("c-1")), duplicate, T0)

    assert (raised.value.customer_id, raised.value.survivor_id) == ("c-2", "c-3")


def test_a_merged_duplicate_cannot_survive_a_merge() -> None:
    survivor = given(registered("c-1"), CustomerMergedInto(customer_id="c-1", survivor_id="c-3"))

    with pytest.raises(CustomerAlreadyMerged):
        decide_merge(survivor, given(registered("c-2")), T0)


def test_an_erased_customer_cannot_take_part_in_a_merge() -> None:
    erased = given(registered("c-2"), PersonalDataErased(customer_id="c-2", erased_at=T0, by="u-1"))

    with pytest.raises(CustomerErased):
        decide_merge(given(registered("c-1")), erased, T0)
    with pytest.raises(CustomerErased):
        decide_merge(erased, given(registered("c-1")), T0)


# --- erasure ---------------------------------------------------------------------------


def test_erasing_personal_data() -> None:
    history = [registered(email="zw@example.com", phone="+8613800138000",
                          birthday=date(1990, 5, 1), attributes={"note": "likes tea"},
                          tags=["vip"], owner_id="u-1")]

    events = decide(ErasePersonalData(customer_id="c-1", by="dpo-1"), given(*history), T0)

    assert events == [PersonalDataErased(customer_id="c-1", erased_at=T0, by="dpo-1")]
    customer = given(*history, *events)
    assert customer.erased
    assert (customer.name, customer.email, customer.phone, customer.birthday) == (
        "", None, None, None
    )
    assert customer.attributes == {}
    assert (customer.tags, customer.owner_id) == (("vip",), "u-1")  # not personal data


@pytest.mark.parametrize("command", COMMANDS_ON_C1, ids=lambda c: type(c).__name__)
def test_an_erased_customer_refuses_further_commands(command: CustomerCommand) -> None:
    erased = given(registered("c-1"), PersonalDataErased(customer_id="c-1", erased_at=T0, by="u"))

    with pytest.raises(CustomerErased) as raised:
        decide(command, erased, T0)

    assert raised.value.status_code == 410


def test_erasing_twice_changes_nothing() -> None:
    erased = given(registered("c-1"), PersonalDataErased(customer_id="c-1", erased_at=T0, by="u"))

    assert decide(ErasePersonalData(customer_id="c-1", by="u"), erased, T0) == []


def test_a_merged_duplicate_can_still_be_erased() -> None:
    duplicate = given(registered("c-1"), CustomerMergedInto(customer_id="c-1", survivor_id="c-2"))

    events = decide(ErasePersonalData(customer_id="c-1", by="dpo-1"), duplicate, T0)

    assert events == [PersonalDataErased(customer_id="c-1", erased_at=T0, by="dpo-1")]


def test_an_erased_company_cannot_be_joined() -> None:
    erased = given(company("co-1"), PersonalDataErased(customer_id="co-1", erased_at=T0, by="u"))

    with pytest.raises(CustomerErased):
        decide(ChangeProfile(customer_id="c-1", company_id="co-1"), given(registered()), T0,
               others={"co-1": erased})


# --- custom fields ---------------------------------------------------------------------


def test_defining_a_custom_field() -> None:
    command = DefineCustomField(name="Industry", type="choice", choices=[" Retail", "Finance"])

    events = decide_custom_field(command, {}, T0)

    assert events == [CustomFieldDefined(name="industry", type="choice", required=False,
                                         choices=["Retail", "Finance"])]
    assert fold_custom_fields(events) == {"industry": INDUSTRY}


def test_defining_the_same_field_again_yields_no_events() -> None:
    command = DefineCustomField(name="industry", type="choice", choices=["Retail", "Finance"])

    assert decide_custom_field(command, {"industry": INDUSTRY}, T0) == []


def test_a_field_can_become_required_or_gain_choices() -> None:
    command = DefineCustomField(name="industry", type="choice", required=True,
                                choices=["Retail", "Finance", "Energy"])

    events = decide_custom_field(command, {"industry": INDUSTRY}, T0)

    assert fold_custom_fields([CustomFieldDefined(name="industry", type="choice",
                                                  choices=["Retail"]), *events]) == {
        "industry": CustomFieldDefinition("industry", "choice", True,
                                          ("Retail", "Finance", "Energy"))
    }


def test_a_field_cannot_change_its_type() -> None:
    with pytest.raises(CustomFieldAlreadyDefined) as raised:
        decide_custom_field(DefineCustomField(name="seats", type="text"), {"seats": SEATS}, T0)

    assert (raised.value.name, raised.value.type) == ("seats", "number")


def test_valid_attributes_are_normalised() -> None:
    values = validate_attributes(
        {"industry": " finance", "seats": "12", "renewal": date(2026, 12, 31),
         "note": "  likes tea  "},
        DEFINITIONS,
    )

    assert values == {"industry": "Finance", "seats": 12, "renewal": "2026-12-31",
                      "note": "likes tea"}
    assert validate_attributes({"seats": 2.5, "renewal": "2027-01-15"}, DEFINITIONS) == {
        "seats": 2.5, "renewal": "2027-01-15"
    }


@pytest.mark.parametrize(
    ("attributes", "field", "reason"),
    [
        ({"seats": "a dozen"}, "seats", "must be a number"),
        ({"seats": True}, "seats", "must be a number"),
        ({"seats": float("nan")}, "seats", "must be a finite number"),
        ({"renewal": "next spring"}, "renewal", "must be a date (YYYY-MM-DD)"),
        ({"renewal": "2026-02-30"}, "renewal", "must be a date (YYYY-MM-DD)"),
        ({"renewal": T0}, "renewal", "must be a date without a time"),
        ({"industry": "Mining"}, "industry", "must be one of Retail, Finance"),
        ({"note": 42}, "note", "must be text"),
        ({"colour": "red"}, "colour", "is not a custom field of this tenant"),
    ],
)
def test_invalid_attributes_are_refused_naming_the_field(
    attributes: dict[str, object], field: str, reason: str
) -> None:
    with pytest.raises(InvalidAttribute) as raised:
        validate_attributes(attributes, DEFINITIONS)

    assert (raised.value.attribute, raised.value.reason) == (field, reason)


def test_a_required_attribute_must_be_given_and_not_blank() -> None:
    definitions = {**DEFINITIONS, "region": REGION}

    with pytest.raises(InvalidAttribute) as raised:
        validate_attributes({"region": "  "}, definitions)
    assert raised.value.attribute == "region"

    assert validate_attributes({"region": "华东"}, definitions) == {"region": "华东"}
    assert validate_attributes({}, definitions, require_all=False) == {}


# --- folding ---------------------------------------------------------------------------


def test_the_version_is_the_number_of_events_folded() -> None:
    customer = given(registered(), CustomerTagged(customer_id="c-1", tag="vip"),
                     CustomerUntagged(customer_id="c-1", tag="vip"))

    assert customer.version == 3


def test_an_event_type_this_code_does_not_know_still_counts_as_a_version() -> None:
    class SomethingNew(DomainEvent, type_name="crm.contacts.something_new.v1"):
        customer_id: str

    customer = given(registered(), SomethingNew(customer_id="c-1"))

    assert customer.version == 2


def test_deciding_on_another_customers_state_is_a_handler_bug() -> None:
    with pytest.raises(ValueError, match="state of c-2"):
        decide(TagCustomer(customer_id="c-1", tags=["vip"]), given(registered("c-2")), T0)


def test_an_empty_stream_is_no_customer() -> None:
    assert fold([]) is None


def test_a_stream_must_start_with_the_registration() -> None:
    with pytest.raises(ValueError, match="before CustomerRegistered"):
        fold([CustomerTagged(customer_id="c-1", tag="vip")])


# --- the published language ------------------------------------------------------------


def test_every_event_type_is_published_with_a_versioned_name_and_schema() -> None:
    assert all(t.startswith("crm.contacts.") and t.endswith(".v1") for t in catalog.types)
    assert len(catalog.types) == 13
    schemas = catalog.json_schemas()
    assert schemas["crm.contacts.customer_registered.v1"]["$id"] == (
        "https://schemas.crm.example/events/crm.contacts.customer_registered.v1.json"
    )


def test_every_event_about_a_customer_names_the_customer() -> None:
    for type_name in catalog.types:
        if type_name != "crm.contacts.custom_field_defined.v1":
            assert "customer_id" in catalog.json_schema(type_name)["required"], type_name


def test_events_survive_the_trip_through_json() -> None:
    merged = CustomerMerged(
        customer_id="c-1", duplicate_id="c-2", birthday=date(1990, 5, 1), tags=["b2b"],
        attributes={"seats": 9, "ratio": 0.5, "note": "x"},
        consents={"sms": ConsentRecord(granted=True, source="web form", at=T0)},
    )

    type_name, data = catalog.encode(merged)

    assert catalog.decode(type_name, data) == merged


# --- search keys -----------------------------------------------------------------------


def test_a_chinese_name_is_found_by_pinyin_and_initials() -> None:
    assert search_keys("张伟") == ["张伟", "zhang wei", "zhangwei", "zw"]


def test_a_polyphonic_surname_is_found_by_both_readings() -> None:
    keys = search_keys("曾伟")

    assert {"zeng wei", "zengwei", "zw", "ceng wei"} <= set(keys)


def test_a_latin_name_is_lowercased() -> None:
    assert search_keys("  John   SMITH ") == ["john smith"]
    assert search_keys("José Núñez") == ["josé núñez", "jose nunez"]


def test_a_mixed_name_keeps_its_latin_words() -> None:
    assert search_keys("3M中国") == ["3m中国", "3m zhong guo", "3mzhongguo", "3zg"]


# --- duplicates -----------------------------------------------------------------------


def test_a_duplicate_names_the_existing_customer_and_the_matching_field() -> None:
    error = DuplicateCustomer("c-1", "email")

    assert error.status_code == 409
    assert error.body() == {
        "type": "about:blank",
        "title": "Conflict",
        "status": 409,
        "detail": "a customer with this email already exists",
        "existing_id": "c-1",
        "field": "email",
    }
