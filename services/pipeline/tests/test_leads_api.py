"""Leads over HTTP: assignment, qualification, conversion through contacts, erasure."""

from __future__ import annotations

from typing import Any

from services.pipeline.tests.conftest import Api, eventually


async def capture(api: Api, roles: tuple[str, ...] = ("marketing",), **body: Any) -> str:
    body = {"name": "周杰", "source": "web_form"} | body
    response = await api.client.post("/api/v1/leads", json=body, headers=api.auth(roles=roles))
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def lead(api: Api, lead_id: str) -> dict[str, Any]:
    response = await api.client.get(f"/api/v1/leads/{lead_id}", headers=api.auth())
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_leads_are_assigned_by_the_tenants_rules_within_caps(api: Api) -> None:
    rules = {
        "rules": [
            {"kind": "territory", "match": "east", "team": ["amy", "bo"], "cap": 1},
            {"kind": "round_robin", "team": ["dan"], "cap": 1},
        ]
    }
    refused = await api.client.put(
        "/api/v1/assignment-rules", json=rules, headers=api.auth(roles=["sales"])
    )
    assert refused.status_code == 403
    defined = await api.client.put(
        "/api/v1/assignment-rules", json=rules, headers=api.auth(roles=["manager"])
    )
    assert defined.status_code == 200, defined.text

    owners = [(await lead(api, await capture(api, territory="East")))["owner_id"] for _ in range(4)]
    assert owners == ["amy", "bo", "dan", None]
    first = await lead(api, await capture(api, owner_id="zoe"))
    assert (first["owner_id"], first["assigned_by"]) == ("zoe", "manual")
    queued = await api.client.get("/api/v1/leads", params={"queued": "true"}, headers=api.auth())
    (waiting,) = queued.json()["items"]
    handed = await api.client.put(
        f"/api/v1/leads/{waiting['id']}/owner", json={"owner_id": "amy"}, headers=api.auth()
    )
    assert handed.status_code == 200, handed.text
    assert (await lead(api, waiting["id"]))["assigned_by"] == "manual"
    mine = await api.client.get("/api/v1/leads", params={"owner_id": "amy"}, headers=api.auth())
    assert len(mine.json()["items"]) == 2
    bad = await api.client.put(
        "/api/v1/assignment-rules",
        json={"rules": [{"kind": "industry", "team": ["a"]}]},
        headers=api.auth(),
    )
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "rules.0"


async def test_a_lead_is_qualified_or_disqualified_with_a_reason(api: Api) -> None:
    lead_id = await capture(api)
    no_reason = await api.client.post(
        f"/api/v1/leads/{lead_id}/disqualify", json={"reason": ""}, headers=api.auth()
    )
    assert no_reason.status_code == 422, no_reason.text
    qualified = await api.client.post(f"/api/v1/leads/{lead_id}/qualify", headers=api.auth())
    assert qualified.status_code == 200, qualified.text
    dropped = await api.client.post(
        f"/api/v1/leads/{lead_id}/disqualify", json={"reason": "no budget"}, headers=api.auth()
    )
    assert dropped.status_code == 200, dropped.text
    found = await lead(api, lead_id)
    assert (found["status"], found["disqualified_reason"]) == ("disqualified", "no budget")
    converted = await api.client.post(
        f"/api/v1/leads/{lead_id}/convert", json={}, headers=api.auth()
    )
    assert converted.status_code == 409, converted.text


async def test_a_lead_with_a_customers_email_converts_to_that_customer(api: Api) -> None:
    existing = await api.register(email="zhou.jie@example.com")
    lead_id = await capture(api, email="Zhou.Jie@example.com")
    await api.client.post(f"/api/v1/leads/{lead_id}/qualify", headers=api.auth())
    converted = await api.client.post(
        f"/api/v1/leads/{lead_id}/convert",
        json={"deal": {"title": "first order", "amount": 50000, "currency": "CNY"}},
        headers=api.auth(),
    )
    assert converted.status_code == 200, converted.text
    body = converted.json()
    assert body["customer_id"] == existing
    deal = await api.client.get(f"/api/v1/deals/{body['deal_id']}", headers=api.auth())
    assert deal.json()["customer_id"] == existing
    assert (await lead(api, lead_id))["status"] == "converted"
    again = await api.client.post(f"/api/v1/leads/{lead_id}/convert", json={}, headers=api.auth())
    assert again.status_code == 409


async def test_a_new_prospect_converts_into_a_new_customer(api: Api) -> None:
    lead_id = await capture(api, email="new.one@example.com", phone="13900139000")
    await api.client.post(f"/api/v1/leads/{lead_id}/qualify", headers=api.auth())
    converted = await api.client.post(
        f"/api/v1/leads/{lead_id}/convert", json={}, headers=api.auth()
    )
    assert converted.status_code == 200, converted.text
    customer = await api.contacts.get(
        f"/api/v1/customers/{converted.json()['customer_id']}", headers=api.auth()
    )
    assert customer.status_code == 200
    assert customer.json()["email"] == "new.one@example.com"
    # The new customer can order at once.
    await api.place(converted.json()["customer_id"])


async def test_an_erased_prospect_is_forgotten(api: Api) -> None:
    lead_id = await capture(api, email="gone@example.com", company="Gone Ltd")
    refused = await api.client.delete(
        f"/api/v1/leads/{lead_id}/personal-data", headers=api.auth(roles=["manager"])
    )
    assert refused.status_code == 403
    erased = await api.client.delete(
        f"/api/v1/leads/{lead_id}/personal-data", headers=api.auth(roles=["admin"])
    )
    assert erased.status_code == 200, erased.text
    found = await lead(api, lead_id)
    assert (found["name"], found["email"], found["company"]) == ("", None, None)
    listed = await api.client.get("/api/v1/leads", headers=api.auth())
    assert "gone@example.com" not in listed.text and "Gone Ltd" not in listed.text


async def test_erasing_the_customer_forgets_the_lead_it_came_from(api: Api) -> None:
    lead_id = await capture(api, name="吴敏", email="wu.min@example.com")
    await api.client.post(f"/api/v1/leads/{lead_id}/qualify", headers=api.auth())
    converted = await api.client.post(
        f"/api/v1/leads/{lead_id}/convert", json={}, headers=api.auth()
    )
    customer = converted.json()["customer_id"]
    erased = await api.contacts.delete(
        f"/api/v1/customers/{customer}/personal-data", headers=api.auth()
    )
    assert erased.status_code == 200, erased.text

    async def forgotten() -> bool:
        return (await lead(api, lead_id))["email"] is None

    await eventually(forgotten)
    assert (await lead(api, lead_id))["name"] == ""


async def test_a_lead_with_a_malformed_email_or_phone_names_the_field(api: Api) -> None:
    for field, value in (("email", "not-an-email"), ("phone", "call me maybe")):
        response = await api.client.post(
            "/api/v1/leads",
            json={"name": "周杰", "source": "web_form", field: value},
            headers=api.auth(),
        )
        assert response.status_code == 422, response.text
        assert response.json()["errors"][0]["field"] == field
