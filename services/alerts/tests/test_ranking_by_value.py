"""The kept ranking by revenue at risk (decision 0101): each risk carries the chance of no
purchase in 90 days, the predicted value and their product; the ranking pages by that
product by default, or by score; the weekly list sorts either way."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import pytest

from libs.events.catalog.pipeline import OrderPlaced
from services.alerts.api import risks
from services.alerts.handlers import context, ranking, sweep
from services.alerts.tests.conftest import T0, Api, days_before
from services.alerts.tests.test_api import registered
from testing.consumers import Clock, envelopes_of

CUSTOMERS = 240


async def a_tenant_with_a_past(api: Api) -> None:
    """Enough buyers (200 judged at least) for the tenant's lapse model to be learnt:
    each buys every 20-120 days from its start, some stop, orders of varying worth."""
    rng = random.Random(101)
    contacts, pipeline = [], []
    for n in range(CUSTOMERS):
        customer_id = f"c-{n:03d}"
        contacts += envelopes_of(
            "contacts", customer_id, [registered(customer_id, days=700)], tenant="acme", at=T0
        )
        orders: list[OrderPlaced] = []
        day = 600 - rng.uniform(0, 300)
        stops_at = rng.uniform(0, day - 1) if n % 3 else 0.0
        while day > stops_at or not orders:
            orders.append(
                OrderPlaced(
                    order_id=f"{customer_id}-o{len(orders)}",
                    customer_id=customer_id,
                    currency="CNY",
                    total=1_000 * (1 + n % 40),
                    placed_at=days_before(day),
                )
            )
            day -= rng.uniform(20, 120)
        pipeline += envelopes_of("pipeline", customer_id, orders, tenant="acme", at=T0)
    await api.publish_envelopes("contacts", contacts)
    await api.publish_envelopes("pipeline", pipeline)
    await api.caught_up()


async def pages(api: Api, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = await api.risks(limit=70, **({"cursor": cursor} if cursor else {}), **params)
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items


async def test_the_ranking_pages_by_revenue_at_risk_by_default_or_by_score(
    api: Api, clock: Clock
) -> None:
    # The tenant's context learnt once a day, as a running service reuses it (tests
    # learn it per batch by default).
    api.app.state.alerts.context_seconds = 3600
    await a_tenant_with_a_past(api)
    # A day on, every customer is assessed again with the whole tenant's past learnt.
    clock.advance(days=1, minutes=1)
    await sweep(api.app.state.alerts)

    by_value = await pages(api)
    by_score = await pages(api, sort="score")

    assert sorted(i["customer_id"] for i in by_value) == [f"c-{n:03d}" for n in range(CUSTOMERS)]
    assert sorted(i["customer_id"] for i in by_score) == sorted(i["customer_id"] for i in by_value)
    at_risk = [i["revenue_at_risk"] or 0 for i in by_value]
    assert at_risk == sorted(at_risk, reverse=True) and at_risk[0] > 0
    scores = [i["score"] for i in by_score]
    assert scores == sorted(scores, reverse=True)
    for item in by_value:
        p, value = item["no_purchase_probability"], item["predicted_value"]
        assert isinstance(p, float) and 0 <= p <= 1 and isinstance(value, int)
        # The probability shown is rounded to 4 places.
        assert abs(item["revenue_at_risk"] - p * value) <= 0.5 + value * 5e-5
        assert (item["horizon_days"], item["value_horizon_days"]) == (90, 365)
    assert [i["customer_id"] for i in by_value] != [i["customer_id"] for i in by_score]


async def test_a_cursor_pages_only_the_order_it_was_made_in(api: Api, clock: Clock) -> None:
    for n in range(3):
        await api.publish("contacts", f"c-{n}", registered(f"c-{n}"))
    await api.caught_up()
    cursor = (await api.risks(limit=1))["next_cursor"]

    mixed = await api.client.get(
        "/api/v1/churn/risks", params={"cursor": cursor, "sort": "score"}, headers=api.auth("acme")
    )
    unknown = await api.client.get(
        "/api/v1/churn/risks", params={"sort": "name"}, headers=api.auth("acme")
    )

    assert mixed.status_code == 422 and "cursor" in mixed.text
    assert unknown.status_code == 422 and "sort" in unknown.text


async def test_the_weekly_list_says_its_order(api: Api, clock: Clock) -> None:
    await api.publish("contacts", "c-1", registered("c-1"))
    await api.caught_up()
    for sort in ("revenue_at_risk", "score"):
        response = await api.client.get(
            "/api/v1/churn/weekly", params={"sort": sort}, headers=api.auth("acme")
        )
        assert response.status_code == 200 and response.json()["sorted_by"] == sort
    assert clock.now - timedelta(days=1) < clock.now


async def test_a_large_tenant_asks_for_a_past_ranking_as_a_job_not_a_request(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    for n in range(3):
        await api.publish("contacts", f"c-{n}", registered(f"c-{n}"))
    await api.caught_up()
    monkeypatch.setattr(risks, "SCORED_ON_REQUEST", 2)

    past = await api.client.get(
        "/api/v1/churn/risks", params={"as_of": "2026-06-30"}, headers=api.auth("acme")
    )
    now = await api.client.get("/api/v1/churn/risks", headers=api.auth("acme"))

    assert past.status_code == 422
    (error,) = past.json()["errors"]
    assert error["field"] == "as_of" and "POST /api/v1/churn/rankings" in error["reason"]
    assert now.status_code == 200 and len(now.json()["items"]) == 3


async def test_customers_looked_at_as_of_one_date_learn_the_tenants_past_once(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    for n in range(2):
        await api.publish("contacts", f"c-{n}", registered(f"c-{n}"))
    await api.caught_up()
    learnt: list[object] = []
    real = ranking.context_for

    async def counted(*args: Any) -> Any:
        learnt.append(args[-1])
        return await real(*args)

    monkeypatch.setattr(context, "context_for", counted)  # where Alerts looks it up
    api.app.state.alerts.context_seconds = 60

    for customer_id in ("c-0", "c-1"):
        await api.risk(customer_id, as_of="2026-06-30")
    await api.risk("c-0", as_of="2026-03-31")

    assert len(learnt) == 2  # 2026-06-30 once for both customers, then 2026-03-31
