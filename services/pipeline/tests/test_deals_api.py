"""Deals, stages and the funnel over HTTP, on real PostgreSQL and the real broker."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from services.pipeline.tests.conftest import Api


async def open_deal(api: Api, customer_id: str, **body: Any) -> dict[str, Any]:
    body = {
        "customer_id": customer_id,
        "title": "500 tins",
        "amount": 100000,
        "currency": "CNY",
    } | body
    response = await api.client.post("/api/v1/deals", json=body, headers=api.auth())
    assert response.status_code == 201, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def move(api: Api, deal_id: str, stage: str, **extra: Any) -> Any:
    headers = api.auth() | extra.pop("headers", {})
    return await api.client.post(
        f"/api/v1/deals/{deal_id}/stage", json={"stage": stage, **extra}, headers=headers
    )


async def test_a_deal_moves_through_the_default_stages_with_if_match(api: Api) -> None:
    customer = await api.register()
    deal = await open_deal(api, customer)
    detail = (await api.client.get(f"/api/v1/deals/{deal['id']}", headers=api.auth())).json()
    assert (detail["stage"], detail["probability"], detail["owner_id"]) == (
        "initial contact",
        10,
        "u-1",
    )

    moved = await move(api, deal["id"], "quote", headers={"If-Match": '"1"'})
    assert moved.status_code == 200, moved.text
    assert moved.headers["ETag"] == '"2"'
    stale = await move(api, deal["id"], "negotiation", headers={"If-Match": '"1"'})
    assert stale.status_code == 412, stale.text

    no_reason = await move(api, deal["id"], "lost")
    assert no_reason.status_code == 422, no_reason.text
    assert no_reason.json()["errors"][0]["field"] == "reason"
    unknown = await move(api, deal["id"], "dreaming")
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "stage"

    won = await move(api, deal["id"], "won", headers={"If-Match": '"2"'})
    assert won.status_code == 200, won.text
    assert won.json()["version"] == 4  # the stage change and DealWon
    closed = await move(api, deal["id"], "quote")
    assert closed.status_code == 409, closed.text


async def test_a_deal_for_an_unknown_customer_names_the_field(api: Api) -> None:
    response = await api.client.post(
        "/api/v1/deals",
        json={"customer_id": "nobody", "title": "x", "amount": 1, "currency": "CNY"},
        headers=api.auth(),
    )
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == "customer_id"


async def test_a_tenant_sets_its_own_stages(api: Api) -> None:
    stages = {
        "stages": [
            {"name": "线索", "probability": 5},
            {"name": "报价", "probability": 40},
            {"name": "成交", "probability": 100, "outcome": "won"},
            {"name": "丢单", "probability": 0, "outcome": "lost"},
        ]
    }
    refused = await api.client.put(
        "/api/v1/deal-stages", json=stages, headers=api.auth(roles=["sales"])
    )
    assert refused.status_code == 403
    defined = await api.client.put(
        "/api/v1/deal-stages", json=stages, headers=api.auth(roles=["manager"])
    )
    assert defined.status_code == 200, defined.text
    assert [s["name"] for s in defined.json()["stages"]] == ["线索", "报价", "成交", "丢单"]
    bad = await api.client.put(
        "/api/v1/deal-stages",
        json={
            "stages": [*stages["stages"][:2], {"name": "x", "probability": 0, "outcome": "lost"}]
        },
        headers=api.auth(),
    )
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "stages"

    customer = await api.register()
    deal = await open_deal(api, customer)
    assert (await move(api, deal["id"], "报价")).status_code == 200
    # Another tenant still has the defaults.
    theirs = await api.client.get("/api/v1/deal-stages", headers=api.auth("globex"))
    assert theirs.json()["stages"][0]["name"] == "initial contact"


async def test_the_funnel_counts_conversions_stays_wins_and_the_forecast(api: Api) -> None:
    day0 = datetime(2026, 10, 1, 9, 0, tzinfo=UTC)
    clock = [day0]
    api.pipeline.clock = lambda: clock[0]
    customer = await api.register()
    a = await open_deal(api, customer, amount=100000)
    b = await open_deal(api, customer, amount=50000)
    c = await open_deal(api, customer, amount=20000, owner_id="u-2")
    clock[0] = day0 + timedelta(days=4)
    assert (await move(api, a["id"], "quote")).status_code == 200
    assert (await move(api, b["id"], "quote")).status_code == 200
    clock[0] = day0 + timedelta(days=10)
    assert (await move(api, a["id"], "won")).status_code == 200
    assert (await move(api, b["id"], "lost", reason="price")).status_code == 200

    response = await api.client.get(
        "/api/v1/funnel",
        params={"from": "2026-10-01T00:00:00Z", "to": "2026-11-01T00:00:00Z"},
        headers=api.auth(),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    by_stage = {line["stage"]: line for line in body["stages"]}
    assert by_stage["initial contact"]["deals"] == 3
    assert by_stage["initial contact"]["value"] == {"CNY": 170000}
    assert by_stage["initial contact"]["conversion_to_next"] == round(2 / 3, 4)
    assert by_stage["initial contact"]["median_days_in_stage"] == 4.0
    assert by_stage["quote"]["deals"] == 2 and by_stage["quote"]["conversion_to_next"] == 0.5
    assert by_stage["quote"]["median_days_in_stage"] == 6.0
    assert body["win_rate"] == 0.5
    assert body["forecast"] == [
        {"currency": "CNY", "open_deals": 1, "amount": 20000, "weighted": 2000}
    ]

    mine = await api.client.get(
        "/api/v1/funnel",
        params={"from": "2026-10-01T00:00:00Z", "to": "2026-11-01T00:00:00Z", "owner_id": "u-2"},
        headers=api.auth(),
    )
    assert {line["stage"]: line["deals"] for line in mine.json()["stages"]}["quote"] == 0
    before = await api.client.get(
        "/api/v1/funnel",
        params={"from": "2026-09-01T00:00:00Z", "to": "2026-10-01T00:00:00Z"},
        headers=api.auth(),
    )
    assert all(line["deals"] == 0 for line in before.json()["stages"])
    listed = await api.client.get(
        "/api/v1/deals", params={"customer_id": customer, "status": "open"}, headers=api.auth()
    )
    assert [d["id"] for d in listed.json()["items"]] == [c["id"]]


async def test_the_funnel_needs_a_period_that_ends_after_it_starts(api: Api) -> None:
    response = await api.client.get(
        "/api/v1/funnel",
        params={"from": "2026-10-01T00:00:00Z", "to": "2026-10-01T00:00:00Z"},
        headers=api.auth(),
    )
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "to"


async def test_a_quote_with_lines_is_attached_to_a_deal(api: Api) -> None:
    customer = await api.register()
    deal = await open_deal(api, customer)
    quote = {
        "quote_id": "Q-2026-001",
        "lines": [{"sku": "TEA", "name": "龙井", "quantity": 500, "unit_price": 1800}],
        "valid_until": "2026-12-31",
    }
    attached = await api.client.post(
        f"/api/v1/deals/{deal['id']}/quotes", json=quote, headers=api.auth()
    )
    assert attached.status_code == 201, attached.text
    retried = await api.client.post(
        f"/api/v1/deals/{deal['id']}/quotes", json=quote, headers=api.auth()
    )
    assert retried.status_code == 200, retried.text
    detail = (await api.client.get(f"/api/v1/deals/{deal['id']}", headers=api.auth())).json()
    assert [(q["id"], q["total"]) for q in detail["quotes"]] == [("Q-2026-001", 900000)]
