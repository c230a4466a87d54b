"""Tickets on `make run`'s setup, through the gateway: a customer registered a moment
ago opens a ticket, it is answered, solved, surveyed, and found under the customer."""

from __future__ import annotations

import httpx
import pytest

from libs.auth import issue_token
from libs.platform.settings import ServiceSettings
from tests.conftest import CLIENT_TIMEOUT, RunningPlatform, view_until


def token(tenant: str, roles: list[str]) -> str:
    return issue_token(ServiceSettings().auth(), f"user@{tenant}", tenant, roles)


@pytest.fixture(scope="module")
def client(platform: RunningPlatform) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token('acme', ['admin'])}"}
    return httpx.Client(base_url=platform.gateway, headers=headers, timeout=CLIENT_TIMEOUT)


def test_a_ticket_s_life_through_the_gateway(client: httpx.Client) -> None:
    policy = {"targets": {"normal": {"first_response_minutes": 60, "resolution_minutes": 480}}}
    assert client.put("/api/v1/sla-policies/default", json=policy).status_code == 200
    registered = client.post("/api/v1/customers", json={"kind": "person", "name": "李娜"})
    assert registered.status_code == 201, registered.text
    customer = registered.json()["id"]

    # At once: tickets asks contacts about a customer its projection has not seen yet.
    opened = client.post(
        "/api/v1/tickets",
        json={"customer_id": customer, "subject": "空调不制冷", "category": "complaint"},
    )
    assert opened.status_code == 201, opened.text
    ticket = opened.json()["id"]
    view = client.get(f"/api/v1/tickets/{ticket}").json()
    assert view["sla"]["targets"]["first_response"]["clock"] == "running"

    path = f"/api/v1/tickets/{ticket}"
    assert client.post(f"{path}/replies", json={"body": "明天上门"}).status_code == 200
    assert client.post(f"{path}/status", json={"status": "solved"}).status_code == 200
    assert client.post(f"{path}/status", json={"status": "closed"}).status_code == 409
    assert client.post(f"{path}/follow-up-visits", json={"satisfied": True}).status_code == 201
    assert client.post(f"{path}/status", json={"status": "closed"}).status_code == 200

    listed = client.get(f"/api/v1/customers/{customer}/tickets").json()["items"]
    assert [(t["id"], t["status"]) for t in listed] == [(ticket, "closed")]
    survey = client.post(f"{path}/csat-survey")
    assert survey.status_code == 201, survey.text

    # The customer answers from the link, through the gateway, without logging in.
    link = survey.json()["link"]
    customer_side = httpx.Client(base_url=str(client.base_url), timeout=CLIENT_TIMEOUT)
    assert customer_side.get(link).json()["kind"] == "csat"
    answered = customer_side.post(f"{link}/answer", json={"score": 5, "comment": "很满意"})
    assert answered.status_code == 201, answered.text
    assert customer_side.post(f"{link}/answer", json={"score": 1}).status_code == 409
    assert customer_side.get("/api/v1/tickets").status_code == 401

    # The 360 view's service section: the closed complaint has left the list, the
    # answer is the last CSAT, and the ticket's life is on the timeline.
    shown = view_until(
        client, customer, lambda v: (v["service"]["last_csat"] or {}).get("score") == 5
    )
    assert shown["tickets"] == []
    assert shown["service"]["last_csat"]["ticket_id"] == ticket
    kinds = {line["type"].split(".")[2] for line in shown["timeline"]}
    assert {"ticket_opened", "ticket_replied", "follow_up_visit_recorded"} <= kinds


def test_support_works_tickets_but_may_not_change_the_sla(
    client: httpx.Client, platform: RunningPlatform
) -> None:
    support = httpx.Client(
        base_url=platform.gateway,
        headers={"Authorization": f"Bearer {token('acme', ['support'])}"},
        timeout=CLIENT_TIMEOUT,
    )
    assert support.get("/api/v1/tickets").status_code == 200
    assert support.put("/api/v1/sla-policies/default", json={"targets": {}}).status_code == 403
    other = httpx.Client(
        base_url=platform.gateway,
        headers={"Authorization": f"Bearer {token('globex', ['admin'])}"},
        timeout=CLIENT_TIMEOUT,
    )
    assert other.get("/api/v1/tickets").json()["items"] == []
