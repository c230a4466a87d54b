"""Who referred a customer: recorded once, about another customer of the same tenant
(decision 0040). Domain rules first, then the HTTP answers against PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from libs.events.catalog.contacts import (
    CustomerMergedInto,
    CustomerReferred,
    CustomerRegistered,
    PersonalDataErased,
)
from services.contacts.commands import RecordReferral
from services.contacts.domain import (
    Customer,
    CustomerAlreadyMerged,
    CustomerErased,
    CustomerNotFound,
    InvalidReferrer,
    ReferralAlreadyRecorded,
    decide,
    fold,
    references,
)
from services.contacts.tests.conftest import Api

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
CUSTOMERS = "/api/v1/customers"


def registered(customer_id: str, tenant_id: str = "acme") -> CustomerRegistered:
    return CustomerRegistered(
        customer_id=customer_id,
        tenant_id=tenant_id,
        kind="person",
        name="张伟",
        registered_at=T0 - timedelta(days=3),
    )


def given(*events: Any) -> Customer:
    state = fold(events)
    assert state is not None
    return state


def refer(customer_id: str, referrer_id: str) -> RecordReferral:
    return RecordReferral(customer_id=customer_id, referrer_id=referrer_id)


def test_a_referral_names_the_referrer_and_is_remembered() -> None:
    newcomer, friend = given(registered("c-new")), given(registered("c-friend"))
    command = refer("c-new", "c-friend")
    assert references(command) == {"c-friend"}

    events = decide(command, newcomer, T0, others={"c-friend": friend})

    assert events == [CustomerReferred(customer_id="c-new", referrer_id="c-friend")]
    assert given(registered("c-new"), *events).referred_by == "c-friend"


def test_the_same_referral_again_changes_nothing() -> None:
    newcomer = given(registered("c-new"), CustomerReferred(customer_id="c-new", referrer_id="c-f"))
    friend = given(registered("c-f"))
    assert decide(refer("c-new", "c-f"), newcomer, T0, others={"c-f": friend}) == []


def test_another_referrer_after_the_first_is_a_conflict() -> None:
    newcomer = given(registered("c-new"), CustomerReferred(customer_id="c-new", referrer_id="c-f"))
    with pytest.raises(ReferralAlreadyRecorded) as refused:
        decide(refer("c-new", "c-g"), newcomer, T0, others={"c-g": given(registered("c-g"))})
    assert refused.value.referrer_id == "c-f"


def test_a_customer_cannot_refer_itself() -> None:
    newcomer = given(registered("c-new"))
    with pytest.raises(InvalidReferrer):
        decide(refer("c-new", "c-new"), newcomer, T0, others={"c-new": newcomer})


def test_a_customer_cannot_be_referred_by_one_it_referred() -> None:
    friend = given(registered("c-f"), CustomerReferred(customer_id="c-f", referrer_id="c-new"))
    with pytest.raises(InvalidReferrer):
        decide(refer("c-new", "c-f"), given(registered("c-new")), T0, others={"c-f": friend})


@pytest.mark.parametrize(
    ("referrer", "error"),
    [
        (None, CustomerNotFound),
        (given(registered("c-f", tenant_id="other")), CustomerNotFound),
        (given(registered("c-f"), CustomerMergedInto(customer_id="c-f", survivor_id="c-s")),
         CustomerAlreadyMerged),
        (given(registered("c-f"), PersonalDataErased(customer_id="c-f", erased_at=T0, by="u")),
         CustomerErased),
    ],
)
def test_the_referrer_must_be_a_live_customer_of_the_tenant(
    referrer: Customer | None, error: type[Exception]
) -> None:
    with pytest.raises(error):
        decide(refer("c-new", "c-f"), given(registered("c-new")), T0, others={"c-f": referrer})


async def test_recording_a_referral_over_http(api: Api) -> None:
    newcomer = await api.register(name="新客")
    friend = await api.register(name="老客")
    other = await api.register(name="别人")
    theirs = await api.register(tenant="globex", name="外人")
    auth = api.auth()

    def put(customer: str, referrer: str, tenant: str = "acme") -> Any:
        return api.client.put(
            f"{CUSTOMERS}/{customer}/referrer",
            json={"referrer_id": referrer},
            headers=api.auth(tenant),
        )

    recorded = await put(newcomer, friend)
    again = await put(newcomer, friend)
    changed = await put(newcomer, other)
    itself = await put(other, other)
    loop = await put(friend, newcomer)
    unknown = await put(other, "nobody")
    foreign = await put(other, theirs)
    not_yours = await put(theirs, friend, tenant="acme")
    blank = await api.client.put(
        f"{CUSTOMERS}/{other}/referrer", json={"referrer_id": " "}, headers=auth
    )

    assert recorded.status_code == 200, recorded.text
    assert again.status_code == 200 and again.json()["version"] == recorded.json()["version"]
    assert changed.status_code == 409 and changed.json()["referrer_id"] == friend
    assert itself.status_code == 422
    assert itself.json()["errors"][0]["field"] == "referrer_id"
    assert loop.status_code == 422
    assert unknown.status_code == 404 and foreign.status_code == 404
    assert not_yours.status_code == 404
    assert blank.status_code == 422
    assert (await api.get(newcomer))["referred_by"] == friend
    assert (await api.get(other))["referred_by"] is None
