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
    assert too_soon.json()["errors"][0]["field"] == "horizon_days"


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
        assert bad.json()["errors"][0]["field"] == "week"


async def test_history_scored_at_three_past_dates_equals_a_platform_that_saw_only_that_much(
    api: Api,
) -> None:
    """Tenant "full" receives the whole history, imported with its own times; tenant
    "then" receives, for each date, only what had happened by it. Same scores, reasons
    and ranking, date by date (event ids aside: each tenant's copy has its own)."""
    history = [
        (days_before(400), "contacts", "c-1", registered("c-1", days=400)),
        (days_before(400), "contacts", "c-2", registered("c-2", days=400)),
        *[
            (days_before(n), "pipeline", "c-1", order("c-1", f"a{n}", n))
            for n in range(390, 150, -30)
        ],
        *[
            (days_before(n), "pipeline", "c-2", order("c-2", f"b{n}", n))
            for n in range(390, 0, -45)
        ],
        (days_before(100), "tickets", "c-2", complaint("c-2", "t1")),
        (days_before(95), "tickets", "c-2", complaint("c-2", "t2")),
        (
            days_before(60),
            "contacts",
            "c-1",
            KeyContactChanged(
                customer_id="c-1", role="ceo", previous_contact_id="a", contact_id="b"
            ),
        ),
    ]
    for at, service, customer, event in history:
        await api.publish(service, customer, event, tenant="full", at=at)
    await api.caught_up()

    def comparable(page: dict[str, object]) -> list[tuple[object, ...]]:
        items = page["items"]
        assert isinstance(items, list)
        return [
            (
                i["customer_id"],
                i["score"],
                i["level"],
                [(r["signal"], r["sentence"]) for r in i["reasons"]],
            )
            for i in items
        ]

    for n, days in enumerate((200, 97, 30)):
        cutoff = days_before(days)
        tenant = f"then-{n}"
        for at, service, customer, event in history:
            # What had happened by then (an order by its placed_at).
            when = getattr(event, "placed_at", None) or at
            if when <= cutoff:
                await api.publish(service, customer, event, tenant=tenant, at=at)
        await api.caught_up()
        replayed = await api.risks("full", as_of=cutoff.isoformat())
        lived = await api.risks(tenant, as_of=cutoff.isoformat())
        assert comparable(replayed) == comparable(lived), days
        assert any(i["score"] > 0 for i in replayed["items"]) or days == 200
