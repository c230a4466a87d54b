"""Input a hostile caller would try: each is a 422 naming the field, never a 500."""

from __future__ import annotations

import base64
import json

import pytest

from services.contacts.tests.conftest import Api
from services.contacts.tests.test_import import imported

CUSTOMERS = "/api/v1/customers"
IMPORT = "/api/v1/customers/import"

# Valid ISO 8601 with a valid offset, yet outside the platform's accepted range
# (1900-01-01 to 2999-12-31 in UTC): beyond what UTC holds, or what a consumer's window
# arithmetic would carry past it (decision 0096).
BEYOND_UTC = [
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59-23:59",
    "0001-01-01T00:00:00Z",
    "1900-01-01T00:00:00+00:01",
    "3000-01-01T00:00:00Z",
]


def crafted_cursor(at: str) -> str:
    raw = json.dumps([at, "c-1"]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize("at", BEYOND_UTC)
async def test_a_time_outside_the_accepted_range_is_a_422_naming_the_field(
    api: Api, at: str
) -> None:
    customer_id = await api.register()
    auth = api.auth()

    answers = {
        "created_from": await api.client.get(CUSTOMERS, params={"created_from": at}, headers=auth),
        "created_to": await api.client.get(CUSTOMERS, params={"created_to": at}, headers=auth),
        "registered_at": await api.client.post(
            CUSTOMERS, json={"kind": "person", "name": "Ana", "registered_at": at}, headers=auth
        ),
        "occurred_at": await api.client.post(
            f"{CUSTOMERS}/{customer_id}/interactions",
            json={"channel": "phone", "direction": "inbound", "occurred_at": at},
            headers=auth,
        ),
        "at": await api.client.put(
            f"{CUSTOMERS}/{customer_id}/consents/email",
            json={"granted": True, "source": "web form", "at": at},
            headers=auth,
        ),
    }

    if at in BEYOND_UTC[:2]:  # a cursor is ours: only a time UTC cannot hold is forged
        answers["cursor"] = await api.client.get(
            CUSTOMERS, params={"cursor": crafted_cursor(at)}, headers=auth
        )

    for field, response in answers.items():
        assert response.status_code == 422, (field, response.text)
        assert [issue["field"] for issue in response.json()["errors"]] == [field]


async def test_the_edges_of_the_accepted_range_are_still_accepted(api: Api) -> None:
    response = await api.client.get(
        CUSTOMERS,
        params={"created_from": "1900-01-01T00:00:00Z", "created_to": "2999-12-31T23:59:59Z"},
        headers=api.auth(),
    )

    assert response.status_code == 200, response.text


async def test_an_imported_time_outside_the_accepted_range_is_an_error_of_its_row(
    api: Api,
) -> None:
    text = "name,registered_at\n早,0001-01-01 00:00\n晚,1900-01-01 07:00\n好,2018-06-01 08:00\n"

    report = await imported(api, text.encode(), mapping=None, timezone="Asia/Shanghai")

    assert report["created"] == 1
    assert [(e["row"], e["field"]) for e in report["errors"]] == [
        (2, "registered_at"),
        (3, "registered_at"),
    ]


async def test_a_mapping_nested_beyond_any_parser_is_a_422_naming_it(api: Api) -> None:
    response = await api.client.post(
        IMPORT,
        files={"file": ("c.csv", b"name\nAna\n", "text/csv")},
        data={"mapping": "[" * 100_000},
        headers=api.auth(),
    )

    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == "mapping"


async def test_records_no_real_customer_holds_are_422s_naming_the_field(api: Api) -> None:
    auth = api.auth()
    field = await api.client.put(
        "/api/v1/custom-fields/seats", json={"type": "number"}, headers=auth
    )
    assert field.status_code in (200, 201), field.text
    customer_id = await api.register()
    attempts = {
        "name": await api.client.post(
            CUSTOMERS, json={"kind": "person", "name": "\u200b\u200d"}, headers=auth
        ),
        "tags": await api.client.post(
            f"{CUSTOMERS}/{customer_id}/tags",
            json={"tags": [f"t{i}" for i in range(10_000)]},
            headers=auth,
        ),
        "choices": await api.client.put(
            "/api/v1/custom-fields/segment",
            json={"type": "choice", "choices": [f"c{i}" for i in range(10_000)]},
            headers=auth,
        ),
        "attributes.seats": await api.client.patch(
            f"{CUSTOMERS}/{customer_id}",
            json={"attributes": {"seats": int("9" * 4000)}},
            headers=auth,
        ),
    }

    for name, response in attempts.items():
        assert response.status_code == 422, (name, response.text)
        assert [issue["field"] for issue in response.json()["errors"]] == [name]
    patched = await api.client.patch(
        f"{CUSTOMERS}/{customer_id}", json={"name": "Ana \u202eLee"}, headers=auth
    )
    assert patched.status_code == 422
