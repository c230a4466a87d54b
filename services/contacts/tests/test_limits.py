"""Limits a user of a CRM expects: what no real customer record holds is refused,
naming the field (pure domain and command tests, no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from libs.events.catalog.contacts import CustomerRegistered
from services.contacts.commands import (
    MAX_CHOICES,
    MAX_TAGS,
    ChangeProfile,
    DefineCustomField,
    RegisterCustomer,
    TagCustomer,
)
from services.contacts.domain import (
    MAX_NUMBER_DIGITS,
    CustomFieldDefinition,
    InvalidAttribute,
    TooManyTags,
    decide,
    fold,
    validate_attributes,
)

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SEATS = {"seats": CustomFieldDefinition("seats", "number")}


def refused_fields(data: dict[str, Any], model: type[Any] = RegisterCustomer) -> list[str]:
    with pytest.raises(ValidationError) as refused:
        model.model_validate(data)
    return [".".join(str(p) for p in error["loc"]) for error in refused.value.errors()]


def registration(**fields: Any) -> dict[str, Any]:
    return {"customer_id": "c-1", "tenant_id": "acme", "kind": "person", "name": "Ana"} | fields


@pytest.mark.parametrize(
    "name",
    [
        "\u200b",  # zero-width space
        "\u200b\u200c\u200d\ufeff",  # zero-width space, non-joiner, joiner, BOM
        "\u2060\u180e",  # word joiner, Mongolian vowel separator
        "\u3164\u3164",  # Hangul filler: a letter that shows nothing
        "\u0301\u0308",  # combining marks with nothing to sit on
    ],
)
def test_a_name_of_invisible_characters_only_is_refused(name: str) -> None:
    assert refused_fields(registration(name=name)) == ["name"]
    assert refused_fields({"customer_id": "c-1", "name": name}, ChangeProfile) == ["name"]


@pytest.mark.parametrize("name", ["Ana\u202egpj.exe", "\u202dAna", "Ana \u2067Lee\u2069"])
def test_a_name_that_reorders_the_text_around_it_is_refused(name: str) -> None:
    assert refused_fields(registration(name=name)) == ["name"]


@pytest.mark.parametrize(
    "name",
    ["张伟", "José", "O'Brien-Smith", "מרים כהן", "\u200fمريم\u200f", "क्षत्रिय", "👩\u200d💻 Ana"],
)
def test_names_in_every_script_with_their_joiners_and_direction_marks_are_kept(name: str) -> None:
    assert RegisterCustomer.model_validate(registration(name=name)).name == name


def test_a_registration_with_more_tags_than_a_customer_may_hold_is_refused() -> None:
    assert refused_fields(registration(tags=[f"t{i}" for i in range(10_000)])) == ["tags"]
    enough = RegisterCustomer.model_validate(registration(tags=[f"t{i}" for i in range(MAX_TAGS)]))
    assert len(enough.tags) == MAX_TAGS


def test_a_tag_of_invisible_characters_is_refused() -> None:
    assert refused_fields(registration(tags=["vip", "\u200b"])) == ["tags"]


def test_tagging_past_the_limit_is_refused_and_tagging_up_to_it_is_not() -> None:
    customer = fold([
        CustomerRegistered(
            customer_id="c-1", tenant_id="acme", kind="person", name="Ana",
            tags=[f"t{i}" for i in range(MAX_TAGS - 1)], registered_at=T0 - timedelta(days=1),
        )
    ])

    last = decide(TagCustomer(customer_id="c-1", tags=["last", "t0"]), customer, T0)
    with pytest.raises(TooManyTags) as refused:
        decide(TagCustomer(customer_id="c-1", tags=["one", "too many"]), customer, T0)

    assert len(last) == 1
    assert refused.value.body()["errors"] == [
        {"field": "tags", "reason": f"a customer has at most {MAX_TAGS} tags"}
    ]


def test_a_custom_field_with_more_choices_than_a_picker_can_show_is_refused() -> None:
    many = {"name": "segment", "type": "choice", "choices": [f"c{i}" for i in range(10_000)]}
    long = {"name": "segment", "type": "choice", "choices": ["x" * 101]}
    invisible = {"name": "segment", "type": "choice", "choices": ["a", "\u200b\u200b"]}
    most = {"name": "segment", "type": "choice", "choices": [f"c{i}" for i in range(MAX_CHOICES)]}

    for data in (many, long, invisible):
        assert refused_fields(data, DefineCustomField) == ["choices"]
    assert len(DefineCustomField.model_validate(most).choices) == MAX_CHOICES


@pytest.mark.parametrize(
    "raw", [int("9" * 4000), "9" * 4000, 10**MAX_NUMBER_DIGITS, 1e300, "-1e16"]
)
def test_a_number_attribute_beyond_fifteen_digits_is_refused(raw: object) -> None:
    with pytest.raises(InvalidAttribute) as refused:
        validate_attributes({"seats": raw}, SEATS)

    assert refused.value.field == "attributes.seats"


@pytest.mark.parametrize(
    "raw", [10**MAX_NUMBER_DIGITS - 1, -(10**MAX_NUMBER_DIGITS - 1), 0.5, "42"]
)
def test_a_number_attribute_within_fifteen_digits_is_kept(raw: object) -> None:
    assert validate_attributes({"seats": raw}, SEATS)["seats"] == (
        int(raw) if isinstance(raw, str) else raw
    )
