"""The duplicate rules hold on both ways a registration is stored: the one-round-trip
routine (PostgreSQL) and the statements every SQLite registration runs."""

from __future__ import annotations

import pytest

from services.contacts.tests.conftest import Api

CUSTOMERS = "/api/v1/customers"


@pytest.fixture(params=["postgresql", "sqlite"])
def any_api(request: pytest.FixtureRequest) -> Api:
    api: Api = request.getfixturevalue("api" if request.param == "postgresql" else "sqlite_api")
    return api


async def register(api: Api, tenant: str = "acme", **body: object) -> tuple[int, dict[str, object]]:
    response = await api.client.post(
        CUSTOMERS, json={"kind": "person", "name": "B", **body}, headers=api.auth(tenant)
    )
    return response.status_code, response.json()


async def test_the_same_phone_written_differently_is_a_duplicate(any_api: Api) -> None:
    first = await any_api.register(phone="+86 138-0013-8000")

    status, body = await register(any_api, phone="13800138000")

    assert status == 409
    assert (body["existing_id"], body["field"]) == (first, "phone")


async def test_the_same_email_in_other_letters_is_a_duplicate(any_api: Api) -> None:
    first = await any_api.register(email="wang.fang@example.com")

    status, body = await register(any_api, email="wang.fang@EXAMPLE.com")

    assert status == 409
    assert (body["existing_id"], body["field"]) == (first, "email")


async def test_another_tenants_phone_or_email_is_not_a_duplicate(any_api: Api) -> None:
    await any_api.register(phone="+86 138-0013-8000", email="shared@example.com")

    status, _ = await register(
        any_api, tenant="globex", phone="13800138000", email="shared@example.com"
    )

    assert status == 201


async def test_a_person_judged_distinct_is_registered_anyway(any_api: Api) -> None:
    first = await any_api.register(phone="+86 138-0013-8000")

    status, body = await register(any_api, phone="13800138000", register_anyway=True)

    assert status == 201
    assert body["id"] != first
