"""Analytics on `make run`'s setup, through the gateway: orders placed and refunded in
the pipeline make the figures, a segment saved by marketing holds the buyer, and an
export is for managers only."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from libs.auth import issue_token
from libs.platform.settings import ServiceSettings
from tests.conftest import CLIENT_TIMEOUT, RunningPlatform, body_until

TENANT = "analytics-e2e"


def bearer(roles: list[str]) -> dict[str, str]:
    token = issue_token(ServiceSettings().auth(), "lead@e2e", TENANT, roles)
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def client(platform: RunningPlatform) -> httpx.Client:
    return httpx.Client(
        base_url=platform.gateway, headers=bearer(["admin"]), timeout=CLIENT_TIMEOUT
    )


def figure_until(client: httpx.Client, path: str, done: Callable[[Any], bool]) -> Any:
    return body_until(client, f"/api/v1/analytics/{path}", done, params={"from": "2026-05-01"})


def test_orders_and_a_refund_make_the_figures_through_the_gateway(client: httpx.Client) -> None:
    registered = client.post("/api/v1/customers", json={"kind": "person", "name": "刘洋"})
    assert registered.status_code == 201, registered.text
    liu = registered.json()["id"]
    orders = []
    for placed_at, total in (
        ("2026-05-01T09:00:00+08:00", 30000),
        ("2026-06-02T09:00:00+08:00", 10000),
    ):
        placed = client.post(
            "/api/v1/orders",
            json={"customer_id": liu, "currency": "CNY", "total": total, "placed_at": placed_at},
        )
        assert placed.status_code == 201, placed.text
        orders.append(placed.json()["id"])
    refunded = client.post(f"/api/v1/orders/{orders[0]}/refunds", json={"amount": 5000})
    assert refunded.status_code == 201, refunded.text

    clv = figure_until(client, "clv", lambda b: b["net_revenue"] == 35000)

    assert (clv["customers"], clv["value"]) == (1, 35000.0)
    repurchase = client.get("/api/v1/analytics/repurchase-rate", params={"from": "2026-05-01"})
    assert repurchase.json()["value"] == 1.0
    cohorts = client.get("/api/v1/analytics/retention", params={"from": "2026-05-01"}).json()
    assert cohorts["table"][0]["buyers"][:2] == [1, 1]

    saved = client.put(
        "/api/v1/analytics/segments/repeat-buyers",
        json={"order_count_min": 2},
        headers=bearer(["marketing"]),
    )
    assert saved.status_code == 201, saved.text
    members = client.get("/api/v1/analytics/segments/repeat-buyers/members").json()
    assert [m["customer_id"] for m in members["items"]] == [liu]
    refused = client.get("/api/v1/analytics/clv/export", headers=bearer(["sales"]))
    assert refused.status_code == 403
    exported = client.get("/api/v1/analytics/clv/export", headers=bearer(["manager"]))
    assert exported.status_code == 200 and exported.text.startswith("figure,")
