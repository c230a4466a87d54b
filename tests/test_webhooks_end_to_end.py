"""A churn warning reaches a tenant's webhook, through the gateway on `make run`'s setup:
complaints and a key contact change make a high risk, whose alert is delivered signed
to a real HTTP receiver, and shows in the subscription's delivery log."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook

from libs.auth import issue_token
from libs.platform.settings import ServiceSettings
from tests.conftest import CLIENT_TIMEOUT, RunningPlatform, body_until, eventually

TENANT = "webhooks-e2e"


class Inbox:
    def __init__(self) -> None:
        self.secret = ""
        self.received: list[dict[str, Any]] = []


@pytest.fixture(scope="module")
def inbox() -> Iterator[tuple[Inbox, str]]:
    box = Inbox()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                Webhook(box.secret).verify(body, headers)
                verified = True
            except Exception:
                verified = False
            box.received.append({"headers": headers, "body": body, "verified": verified})
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield box, f"http://127.0.0.1:{server.server_address[1]}/hooks/crm"
    server.shutdown()


@pytest.fixture(scope="module")
def client(platform: RunningPlatform) -> httpx.Client:
    token = issue_token(ServiceSettings().auth(), "lead@e2e", TENANT, ["manager"])
    return httpx.Client(
        base_url=platform.gateway,
        headers={"Authorization": f"Bearer {token}"},
        timeout=CLIENT_TIMEOUT,
    )


def created(response: httpx.Response) -> str:
    assert response.status_code == 201, response.text
    found: str = response.json()["id"]
    return found


def test_a_high_risk_alert_is_delivered_to_the_tenants_webhook(
    client: httpx.Client, inbox: tuple[Inbox, str]
) -> None:
    box, url = inbox
    subscribed = client.post(
        "/api/v1/webhooks",
        json={"url": url, "event_types": ["crm.alerts.alert_opened.v1"]},
    )
    assert subscribed.status_code == 201, subscribed.text
    box.secret = subscribed.json()["secret"]
    webhook_id = subscribed.json()["id"]

    company = created(client.post("/api/v1/customers", json={"kind": "company", "name": "ACME"}))
    people = [
        created(
            client.post(
                "/api/v1/customers", json={"kind": "person", "name": n, "company_id": company}
            )
        )
        for n in ("王芳", "张伟")
    ]
    path = f"/api/v1/customers/{company}/key-contacts/purchasing"
    assert client.put(path, json={"contact_id": people[0]}).status_code == 200
    for subject in ("发票错误", "送货太慢"):
        created(
            client.post(
                "/api/v1/tickets",
                json={"customer_id": company, "subject": subject, "category": "complaint"},
            )
        )
    assert client.put(path, json={"contact_id": people[1]}).status_code == 200

    gateway = str(client.base_url).rstrip("/")

    def high_alerts() -> list[dict[str, Any]]:
        return [got for got in box.received if json.loads(got["body"])["data"]["level"] == "high"]

    # When the alerts service scores the complaints before the key contact change lands, a
    # medium alert opens first and the high one replaces it (decision 0047): both are sent.
    eventually(gateway, "a high alert reaching the webhook", high_alerts)
    [got] = high_alerts()
    ids = [json.loads(g["body"])["id"] for g in box.received]
    assert len(ids) == len(set(ids)), "an event was delivered twice"
    assert all(g["verified"] for g in box.received)
    assert got["headers"]["content-type"] == "application/cloudevents+json"
    event = json.loads(got["body"])
    assert (event["type"], event["tenantid"]) == ("crm.alerts.alert_opened.v1", TENANT)
    assert event["data"]["customer_id"] == company and event["data"]["level"] == "high"
    assert {r["signal"] for r in event["data"]["reasons"]} == {
        "complaints_increase",
        "key_contact_changed",
    }
    assert got["headers"]["webhook-id"] == event["id"]

    log = body_until(
        client,
        f"/api/v1/webhooks/{webhook_id}/deliveries",
        lambda body: any(
            d["event_id"] == event["id"] and d["status"] == "delivered" for d in body["items"]
        ),
    )["items"]
    assert (event["id"], "delivered", 1) in [
        (d["event_id"], d["status"], d["attempts"]) for d in log
    ]
    assert len({d["event_id"] for d in log}) == len(log)
    # A sales rep may not read where the tenant's events go.
    sales = issue_token(ServiceSettings().auth(), "rep@e2e", TENANT, ["sales"])
    refused = client.get("/api/v1/webhooks", headers={"Authorization": f"Bearer {sales}"})
    assert refused.status_code == 403
