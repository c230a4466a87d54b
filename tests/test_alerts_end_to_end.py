"""Churn warnings on `make run`'s setup, through the gateway: complaints opened in
tickets and a key contact changed in contacts make a high risk with both reasons."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from libs.auth import issue_token
from libs.platform.settings import ServiceSettings
from tests.conftest import CLIENT_TIMEOUT, RunningPlatform, body_until, eventually

TENANT = "alerts-e2e"


@pytest.fixture(scope="module")
def client(platform: RunningPlatform) -> httpx.Client:
    token = issue_token(ServiceSettings().auth(), "lead@e2e", TENANT, ["admin"])
    return httpx.Client(
        base_url=platform.gateway,
        headers={"Authorization": f"Bearer {token}"},
        timeout=CLIENT_TIMEOUT,
    )


def created(response: httpx.Response) -> str:
    assert response.status_code == 201, response.text
    found: str = response.json()["id"]
    return found


def risk_until(client: httpx.Client, customer_id: str, level: str) -> Any:
    return body_until(
        client, f"/api/v1/customers/{customer_id}/churn-risk", lambda body: body["level"] == level
    )


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


def test_a_high_risk_becomes_the_owners_follow_up_task_and_shows_in_the_360_view(
    platform: RunningPlatform,
) -> None:
    # A tenant of its own: the test above counts the high risks of its tenant.
    token = issue_token(ServiceSettings().auth(), "lead@e2e", "alerts-e2e-acting", ["admin"])
    client = httpx.Client(
        base_url=platform.gateway,
        headers={"Authorization": f"Bearer {token}"},
        timeout=CLIENT_TIMEOUT,
    )
    company = created(
        client.post(
            "/api/v1/customers", json={"kind": "company", "name": "Globex", "owner_id": "rep-7"}
        )
    )
    people = [
        created(
            client.post(
                "/api/v1/customers",
                json={"kind": "person", "name": name, "company_id": company},
            )
        )
        for name in ("李娜", "王强")
    ]
    path = f"/api/v1/customers/{company}/key-contacts/purchasing"
    assert client.put(path, json={"contact_id": people[0]}).status_code == 200
    risk_until(client, company, "none")
    for subject in ("账单错误", "客服不回复"):
        created(
            client.post(
                "/api/v1/tickets",
                json={"customer_id": company, "subject": subject, "category": "complaint"},
            )
        )
    assert client.put(path, json={"contact_id": people[1]}).status_code == 200

    risk = risk_until(client, company, "high")
    assert {r["signal"] for r in risk["reasons"]} == {"complaints_increase", "key_contact_changed"}

    def owners_tasks() -> list[Any]:
        response = client.get("/api/v1/tasks", params={"assignee": "rep-7"})
        assert response.status_code == 200, response.text
        items: list[Any] = response.json()["items"]
        return items

    (task,) = eventually(platform.gateway, "the follow-up task in the pipeline", owners_tasks)
    assert task["customer_id"] == company and task["status"] == "open"
    assert task["title"].startswith(f"Churn risk {risk['score']}/100")
    (alert,) = client.get("/api/v1/churn/alerts", params={"status": "open"}).json()["items"]
    assert (alert["customer_id"], alert["level"]) == (company, "high")

    def view_with_risk() -> Any:
        response = client.get(f"/api/v1/customers/{company}/360")
        body = response.json() if response.status_code == 200 else None
        if not (body and body["churn_risk"] and body["alerts"]):
            return None
        # The alert and the task come from two services' topics: each in its own time.
        types = {line["type"] for line in body["timeline"]}
        return (
            body
            if {"crm.alerts.alert_opened.v1", "crm.pipeline.task_created.v1"} <= types
            else None
        )

    view = eventually(platform.gateway, "the risk in the 360 view", view_with_risk)
    assert view["churn_risk"]["level"] == "high"
    assert {r["signal"] for r in view["churn_risk"]["reasons"]} == {
        "complaints_increase",
        "key_contact_changed",
    }
    # Newest first: the high alert open; a medium one on the way up, if the events
    # arrived so, closed by the rise (medium alerts open by default).
    newest, *earlier = view["alerts"]
    assert (newest["alert_id"], newest["status"], newest["level"]) == (
        alert["alert_id"],
        "open",
        "high",
    )
    assert all((a["level"], a["status"]) == ("medium", "left_risk_level") for a in earlier)


def test_a_ranking_as_of_a_past_time_is_a_job_read_through_the_gateway(
    platform: RunningPlatform,
) -> None:
    """`make run` scores the job (one scorer per database) and the gateway pages it."""
    token = issue_token(ServiceSettings().auth(), "lead@e2e", "alerts-e2e-past", ["admin"])
    client = httpx.Client(
        base_url=platform.gateway,
        headers={"Authorization": f"Bearer {token}"},
        timeout=CLIENT_TIMEOUT,
    )
    customer = created(
        client.post(
            "/api/v1/customers",
            json={"kind": "person", "name": "赵敏", "registered_at": "2025-01-10T09:00:00Z"},
        )
    )
    for month in ("02", "03", "04"):
        order = client.post(
            "/api/v1/orders",
            json={
                "customer_id": customer,
                "currency": "CNY",
                "total": 8800,
                "placed_at": f"2025-{month}-01T10:00:00Z",
                "external_id": f"E2E-PAST-{month}",
            },
        )
        assert order.status_code == 201, order.text
    risk_until(client, customer, "high")  # no order since April 2025: overdue now
    body = {"as_of": "2025-04-15T00:00:00Z", "horizon_days": 30}
    headers = {"Idempotency-Key": "e2e-review"}

    asked = client.post("/api/v1/churn/rankings", json=body, headers=headers)
    again = client.post("/api/v1/churn/rankings", json=body, headers=headers)

    assert (asked.status_code, again.status_code) == (202, 200), asked.text
    assert again.headers["Location"] == asked.headers["Location"]
    job = body_until(client, asked.headers["Location"], lambda b: b["status"] == "done")
    assert [(i["customer_id"], i["level"]) for i in job["items"]] == [(customer, "none")]
    # Nothing bought in the 30 days after: the one customer judged churned.
    assert job["backtest"]["customers"] == 1 and job["backtest"]["churned"] == 1
