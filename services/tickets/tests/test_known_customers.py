"""Customers learnt from crm.contacts.events: existence, merges and erasure."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from services.tickets.tests.conftest import Api, eventually


async def ticket_view(api: Api, ticket_id: str) -> dict[str, Any]:
    response = await api.get(f"/api/v1/tickets/{ticket_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_a_customer_known_from_the_topic_needs_no_call_to_contacts(
    api: Api, app: FastAPI
) -> None:
    customer = await api.register()
    directory = app.state.tickets.directory

    async def known() -> bool:
        directory.contacts_url = None  # only what the projection learnt counts
        response = await api.post("/api/v1/tickets", {"customer_id": customer, "subject": "Hi"})
        return response.status_code == 201

    await eventually(known)
    response = await api.post(
        "/api/v1/tickets", {"customer_id": "never-registered", "subject": "x"}
    )
    assert response.status_code == 404


async def test_erasure_makes_what_the_ticket_copied_unreadable(api: Api) -> None:
    customer = await api.register(name="张伟", phone="13800138000")
    ticket = (
        await api.open(
            customer, requester_name="张伟", requester_phone="13800138000", description="我家在..."
        )
    )["id"]
    await api.post(f"/api/v1/tickets/{ticket}/replies", {"body": "张先生您好"})
    assert (await ticket_view(api, ticket))["requester"]["name"] == "张伟"
    listed = await api.get(f"/api/v1/customers/{customer}/tickets")
    assert [t["subject"] for t in listed.json()["items"]] == ["洗衣机不转了"]

    erased = await api.contacts.delete(
        f"/api/v1/customers/{customer}/personal-data", headers=api.auth(roles=["admin"])
    )
    assert erased.status_code == 200, erased.text

    async def forgotten() -> bool:
        view = await ticket_view(api, ticket)
        return bool(view["requester"] == {"name": None, "email": None, "phone": None})

    await eventually(forgotten)
    view = await ticket_view(api, ticket)
    assert view["description"] == ""
    assert [r["body"] for r in view["replies"]] == [""]
    # Free text about the customer, often naming them: sealed, and blanked in the list.
    assert view["subject"] == ""
    listed = await api.get(f"/api/v1/customers/{customer}/tickets")
    assert [t["subject"] for t in listed.json()["items"]] == [""]
    # A ticket opened later keeps no subject either: there is no key to seal it with.
    later = (await api.open(customer, subject="张伟又来电话"))["id"]
    assert (await ticket_view(api, later))["subject"] == ""
    listed = await api.get(f"/api/v1/customers/{customer}/tickets")
    assert [t["subject"] for t in listed.json()["items"]] == ["", ""]


async def test_a_merged_duplicate_s_tickets_follow_the_survivor(api: Api) -> None:
    survivor = await api.register(name="王芳", email="wf@example.com")
    duplicate = await api.register(name="王芳", phone="13900139000", register_anyway=True)
    ticket = (await api.open(duplicate))["id"]

    merged = await api.contacts.post(
        f"/api/v1/customers/{survivor}/merge",
        json={"duplicate_id": duplicate},
        headers=api.auth(roles=["admin"]),
    )
    assert merged.status_code == 200, merged.text

    async def followed() -> bool:
        return bool((await ticket_view(api, ticket))["customer_id"] == survivor)

    await eventually(followed)
    listed = (await api.get(f"/api/v1/customers/{survivor}/tickets")).json()["items"]
    assert [t["id"] for t in listed] == [ticket]
    assert (await api.get(f"/api/v1/customers/{duplicate}/tickets")).json()["items"] == []
    later = await api.open(duplicate)  # the duplicate's id still works: for the survivor
    assert later["customer_id"] == survivor
    reply = await api.post(f"/api/v1/tickets/{ticket}/replies", {"body": "已合并"})
    assert reply.status_code == 200
