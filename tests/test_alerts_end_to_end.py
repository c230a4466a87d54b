"""Churn warnings on `make run`'s setup, through the gateway: complaints opened in
tickets and a key contact changed in contacts make a high risk with both reasons."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from libs.auth import issue_token
from libs.platform.settings import ServiceSettings
from tests.conftest import RunningPlatform

TENANT = "alerts-e2e"


@pytest.fixture(scope="module")
def client(platform: RunningPlatform) -> httpx.Client:
    token = issue_token(ServiceSettings().auth(), "lead@e2e", TENANT, ["admin"])
    return httpx.Client(
        base_url=platform.gateway, headers={"Authorization": f"Bearer {token}"}, timeout=15
    )


def created(response: httpx.Response) -> str:
    assert response.status_code == 201, response.text
    found: str = response.json()["id"]
    return found


def risk_until(client: httpx.Client, customer_id: str, level: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    body: Any = None
    while time.monotonic() < deadline:
        response = client.get(f"/api/v1/customers/{customer_id}/churn-risk")
        if response.status_code == 200:
            body = response.json()
            if body["level"] == level:
                return body
        time.sleep(0.2)
    pytest.fail(f"churn risk of {customer_id} never became {level}: {body}")


def test_complaints_and_a_key_contact_change_make_a_high_risk_through_the_gateway(
    client: httpx.Client,
) -> None:
    company = created(client.post("/api/v1/customers", json={"kind": "company", "name": "ACME"}))
    people = [
        created(
            client.post(
                "/api/v1/customers",
                json={"kind": "person", "name": name, "company_id": company},
            )
        )
        for name in ("王芳", "张伟")
    ]
    path = f"/api/v1/customers/{company}/key-contacts/purchasing"
    assert client.put(path, json={"contact_id": people[0]}).status_code == 200
    risk_until(client, company, "none")
    for subject in ("发票错误", "送货太慢"):
        created(
            client.post(
                "/api/v1/tickets",
                json={"customer_id": company, "subject": subject, "category": "complaint"},
            )
        )
    changed = client.put(path, json={"contact_id": people[1]})
    assert changed.status_code == 200, changed.text

    risk = risk_until(client, company, "high")

    assert {r["signal"] for r in risk["reasons"]} == {"complaints_increase", "key_contact_changed"}
    assert all(r["event_ids"] for r in risk["reasons"])
    ranked = client.get("/api/v1/churn/risks", params={"level": "high"}).json()
    assert [i["customer_id"] for i in ranked["items"]] == [company]
    viewer = issue_token(ServiceSettings().auth(), "v@e2e", TENANT, ["viewer"])
    refused = client.put(
        "/api/v1/churn/rules",
        json=client.get("/api/v1/churn/rules").json(),
        headers={"Authorization": f"Bearer {viewer}"},
    )
    assert refused.status_code == 403
