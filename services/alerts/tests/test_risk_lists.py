"""The backtest and the weekly risk list over HTTP, from other services' events on the
real broker, stored in the real PostgreSQL."""

from __future__ import annotations

from libs.events.catalog.contacts import KeyContactChanged
from services.alerts.tests.conftest import Api, days_before
from services.alerts.tests.test_api import (
    complaint,
    complaints_and_a_key_contact_change,
    order,
    registered,
)


async def test_a_backtest_finds_who_stopped_buying_and_compares_with_days_since(
    api: Api,
) -> None:
    """Two monthly buyers: one stopped two months before the cutoff and complained, one
    went on buying after it. A third never bought: not judged."""
    for c in ("gone", "stays", "never"):
        await api.publish("contacts", c, registered(c, days=800))
    await api.publish("pipeline", "gone", *[order("gone", f"g{n}", n) for n in range(250, 480, 30)])
    await api.publish(
        "pipeline", "stays", *[order("stays", f"s{n}", n) for n in range(10, 480, 30)]
    )
    await api.publish(
        "tickets", "gone", complaint("gone", "t1"), complaint("gone", "t2"), at=days_before(195)
    )
    await api.caught_up()
    cutoff = days_before(180)

    response = await api.client.post(
        "/api/v1/churn/backtests",
        json={"cutoff": cutoff.isoformat(), "horizon_days": 90},
        headers=api.auth(),
    )

    assert response.status_code == 200, response.text
    result = response.json()
    assert (result["customers"], result["churned"]) == (2, 1)
    assert result["ours"]["roc_auc"] == 1.0
    assert result["ours"]["levels"]["high"] == {"flagged": 1, "precision": 1.0, "recall": 1.0}
    assert result["days_since_last_order"]["roc_auc"] == 1.0
    too_soon = await api.client.post(
        "/api/v1/churn/backtests",
        json={"cutoff": days_before(30).isoformat(), "horizon_days": 90},
        headers=api.auth(),
    )
    assert too_soon.status_code == 422
    assert too_soon.json()["detail"][0]["field"] == "horizon_days"


async def test_the_weekly_list_sorts_each_owners_risks_into_new_rising_and_still_open(
    api: Api,
) -> None:
    def changed(customer_id: str) -> KeyContactChanged:
        return KeyContactChanged(
            customer_id=customer_id, role="ceo", previous_contact_id="a", contact_id="b"
        )

    await complaints_and_a_key_contact_change(api, "new")  # none before 2026-11-23
    await api.publish("contacts", "rising", registered("rising"))
    await api.publish("contacts", "rising", changed("rising"), at=days_before(10))
    await api.publish("tickets", "rising", complaint("rising", "r1"), at=days_before(6))
    await api.publish("tickets", "rising", complaint("rising", "r2"), at=days_before(4))
    await api.publish("contacts", "open", registered("open", owner="rep-2"))
    await api.publish("contacts", "open", changed("open"), at=days_before(20))
    await api.publish("contacts", "calm", registered("calm"))
    await api.caught_up()

    response = await api.client.get(
        "/api/v1/churn/weekly", params={"week": "2026-W48"}, headers=api.auth()
    )

    assert response.status_code == 200, response.text
    owners = {
        o["owner_id"]: {
            k: [r["customer_id"] for r in o[k]] for k in ("new", "rising", "still_open")
        }
        for o in response.json()["owners"]
    }
    assert owners == {
        "rep-1": {"new": ["new"], "rising": ["rising"], "still_open": []},
        "rep-2": {"new": [], "rising": [], "still_open": ["open"]},
    }
    mine = await api.client.get(
        "/api/v1/churn/weekly",
        params={"week": "2026-W48", "owner_id": "rep-2"},
        headers=api.auth(),
    )
    assert [o["owner_id"] for o in mine.json()["owners"]] == ["rep-2"]
    for week in ("2026-W60", "next week", "2027-W01"):
        bad = await api.client.get(
            "/api/v1/churn/weekly", params={"week": week}, headers=api.auth()
        )
        assert bad.status_code == 422, week
        assert bad.json()["detail"][0]["field"] == "week"
