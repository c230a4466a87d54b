"""Churn rate per month and the revenue lost with the customers who left, on the
generated history (histories.py) with a 45-day definition of lost."""

from __future__ import annotations

from datetime import date

from libs.events.catalog.pipeline import ContractRenewed, ContractSigned
from services.analytics.tests.conftest import Api
from services.analytics.tests.histories import FEBRUARY, at, publish_history, registered


async def lost_after(api: Api, days: int, at_risk: int) -> None:
    response = await api.client.put(
        "/api/v1/analytics/settings",
        json={"lost_after_days": days, "at_risk_after_days": at_risk},
        headers=api.auth(roles=["manager"]),
    )
    assert response.status_code == 200, response.text


async def test_a_cohort_that_stops_is_lost_with_its_years_revenue(api: Api) -> None:
    await publish_history(api)
    await lost_after(api, 45, 25)
    await api.caught_up()

    answer = await api.get("churn-rate", **{"from": "2026-01-01", "as_of": "2026-06-30"})

    months = {r["month"]: r for r in answer["table"]}
    assert list(months) == ["2026-01", "2026-02", "2026-03", "2026-04", "2026-05", "2026-06"]
    assert months["2026-01"]["churn_rate"] is None  # nobody was active yet
    assert [months[m]["active_at_start"] for m in months] == [0, 4, 6, 7, 4, 4]
    assert [months[m]["lost"] for m in months] == [0, 0, 0, 3, 0, 0]
    assert months["2026-04"]["churn_rate"] == round(3 / 7, 6)
    # February's two bought 1,000 twice; the refunded order was worth nothing.
    assert months["2026-04"]["revenue_lost"] == 4000
    assert answer["lost_after_days"] == 45 and "45 days" in answer["method"]

    lost = await api.get(
        "churn-rate/customers", **{"from": "2026-01-01", "as_of": "2026-06-30", "month": "2026-04"}
    )
    assert [c["customer_id"] for c in lost["items"]] == [*FEBRUARY, "refunded"]
    assert {c["customer_id"]: c["lost_at"][:10] for c in lost["items"]} == {
        "feb-0": "2026-04-24",
        "feb-1": "2026-04-24",
        "refunded": "2026-04-19",
    }


async def test_as_of_a_day_in_april_only_who_was_lost_by_then(api: Api) -> None:
    await publish_history(api)
    await lost_after(api, 45, 25)
    await api.caught_up()

    answer = await api.get("churn-rate", **{"from": "2026-04-01", "as_of": "2026-04-20"})

    assert [(r["month"], r["active_at_start"], r["lost"]) for r in answer["table"]] == [
        ("2026-04", 7, 1)
    ]


async def test_the_definitions_are_the_tenants_and_checked(api: Api) -> None:
    refused = await api.client.put(
        "/api/v1/analytics/settings",
        json={"lost_after_days": 30, "at_risk_after_days": 40},
        headers=api.auth(roles=["admin"]),
    )
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["field"] == "at_risk_after_days"
    forbidden = await api.client.put(
        "/api/v1/analytics/settings", json={}, headers=api.auth(roles=["sales"])
    )
    assert forbidden.status_code == 403
    await lost_after(api, 60, 30)
    assert (await api.get("settings"))["lost_after_days"] == 60
    assert (await api.get("settings", tenant="globex"))["lost_after_days"] == 90
    stale = await api.client.put(
        "/api/v1/analytics/settings",
        json={"lost_after_days": 61},
        headers={**api.auth(), "If-Match": '"0"'},
    )
    assert stale.status_code == 412
    missing = await api.client.get("/api/v1/analytics/churn-rate", headers=api.auth())
    assert missing.status_code == 422 and missing.json()["errors"][0]["field"] == "from"


async def test_contract_customers_are_lost_when_the_contract_ends_unrenewed(api: Api) -> None:
    await publish_history(api)
    for company in ("ended-co", "renewed-co"):
        await api.publish("contacts", company, registered(company, at(1, 1)), at=at(1, 1))
        await api.publish(
            "pipeline",
            company,
            ContractSigned(
                contract_id=f"k-{company}",
                customer_id=company,
                title="support",
                value=120000,
                currency="CNY",
                starts_on=date(2026, 1, 1),
                ends_on=date(2026, 3, 31),
            ),
            at=at(1, 1),
        )
    await api.publish(
        "pipeline",
        "renewed-co",
        ContractRenewed(
            contract_id="k-renewed-co",
            customer_id="renewed-co",
            previous_ends_on=date(2026, 3, 31),
            ends_on=date(2026, 12, 31),
            value=120000,
            currency="CNY",
        ),
        at=at(3, 15),
    )
    await lost_after(api, 45, 25)
    await api.caught_up()

    answer = await api.get("churn-rate", **{"from": "2026-03-01", "as_of": "2026-06-30"})

    rows = [(r["month"], r["active_at_start"], r["lost"]) for r in answer["table"]]
    # Neither company ever ordered: under contract, they are active until it ends.
    assert rows == [("2026-03", 8, 0), ("2026-04", 9, 4), ("2026-05", 5, 0), ("2026-06", 5, 0)]
    lost = await api.get("churn-rate/customers", **{"from": "2026-04-01", "as_of": "2026-06-30"})
    assert [c["customer_id"] for c in lost["items"]] == ["ended-co", *FEBRUARY, "refunded"]
    assert lost["items"][0]["lost_at"].startswith("2026-04-01T00:00")
    # As of March 20th, the renewal was known but the end had not come.
    march = await api.get("churn-rate", **{"from": "2026-03-01", "as_of": "2026-03-20"})
    assert [(r["active_at_start"], r["lost"]) for r in march["table"]] == [(8, 0)]
