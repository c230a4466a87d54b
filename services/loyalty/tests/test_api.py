"""The loyalty API on real PostgreSQL and the real broker."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer

from libs.events.catalog.contacts import CustomerRegistered
from libs.events.catalog.pipeline import OrderPlaced, OrderRefunded
from services.loyalty.handlers.sweeps import sweep_expiry
from services.loyalty.tests.conftest import T0, Api, eventually
from testing.consumers import Clock


async def member(api: Api, customer_id: str, tenant: str = "acme") -> None:
    """A customer contacts registered, once loyalty has heard of it."""
    await api.publish(
        "contacts",
        customer_id,
        CustomerRegistered(
            customer_id=customer_id,
            tenant_id=tenant,
            kind="person",
            name="x",
            registered_at=T0,
        ),
        tenant=tenant,
    )

    async def known() -> bool:
        response = await api.client.get(
            f"/api/v1/customers/{customer_id}/loyalty", headers=api.auth(tenant)
        )
        return response.status_code == 200

    await eventually(known)


async def adjust(api: Api, customer_id: str, points: int, **kwargs: Any) -> Any:
    response = await api.client.post(
        f"/api/v1/customers/{customer_id}/loyalty/adjustments",
        json={"points": points, "reason": "opening balance"},
        headers=api.auth(roles=["manager"]),
        **kwargs,
    )
    assert response.status_code == 201, response.text
    return response.json()


async def define_reward(api: Api, reward_id: str, cost: int, stock: int | None = None) -> None:
    response = await api.client.put(
        f"/api/v1/loyalty/rewards/{reward_id}",
        json={"name": "Tea set", "cost": cost, "stock": stock},
        headers=api.auth(roles=["marketing"]),
    )
    assert response.status_code == 201, response.text


async def redeem(api: Api, customer_id: str, reward_id: str, key: str) -> Any:
    return await api.client.post(
        f"/api/v1/customers/{customer_id}/loyalty/redemptions",
        json={"reward_id": reward_id},
        headers={**api.auth(roles=["support"]), "Idempotency-Key": key},
    )


# --- redemptions ----------------------------------------------------------------------


async def test_fifty_concurrent_redemptions_against_a_balance_for_ten_exactly_ten_succeed(
    api: Api,
) -> None:
    await member(api, "c-1")
    await adjust(api, "c-1", 1_000)
    await define_reward(api, "tea", cost=100)
    answers = await asyncio.gather(*(redeem(api, "c-1", "tea", f"k-{n}") for n in range(50)))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [201] * 10 + [409] * 40, statuses
    refused = [a.json() for a in answers if a.status_code == 409]
    assert {body["wanted"] for body in refused} == {100}
    account = await api.loyalty("c-1")
    assert account["balance"] == 0
    assert sum(line["points"] for line in await api.ledger("c-1")) == 0


async def test_stock_is_never_oversold_by_concurrent_redemptions(api: Api) -> None:
    await member(api, "c-1")
    await adjust(api, "c-1", 1_000)
    await define_reward(api, "mug", cost=10, stock=3)
    answers = await asyncio.gather(*(redeem(api, "c-1", "mug", f"k-{n}") for n in range(12)))
    assert sorted(a.status_code for a in answers) == [201] * 3 + [409] * 9
    reward = await api.client.get("/api/v1/loyalty/rewards/mug", headers=api.auth())
    assert reward.json()["stock_left"] == 0
    assert (await api.loyalty("c-1"))["balance"] == 970


async def test_one_idempotency_key_redeems_once_and_answers_the_same(api: Api) -> None:
    await member(api, "c-1")
    await adjust(api, "c-1", 500)
    await define_reward(api, "tea", cost=100)
    first = await redeem(api, "c-1", "tea", "checkout-77")
    again = await redeem(api, "c-1", "tea", "checkout-77")
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["redemption_id"] == again.json()["redemption_id"]
    assert (await api.loyalty("c-1"))["balance"] == 400
    missing = await api.client.post(
        "/api/v1/customers/c-1/loyalty/redemptions",
        json={"reward_id": "tea"},
        headers=api.auth(roles=["support"]),
    )
    assert missing.status_code == 422
    assert missing.json()["errors"][0]["field"] == "Idempotency-Key"


async def test_a_cancelled_redemption_gives_back_the_points_and_the_stock(api: Api) -> None:
    await member(api, "c-1")
    await adjust(api, "c-1", 150)
    await define_reward(api, "mug", cost=100, stock=1)
    redemption_id = (await redeem(api, "c-1", "mug", "k-1")).json()["redemption_id"]
    cancelled = await api.client.post(
        f"/api/v1/customers/c-1/loyalty/redemptions/{redemption_id}/cancel",
        json={"reason": "out of stock at the store"},
        headers=api.auth(roles=["support"]),
    )
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["balance"] == 150
    reward = await api.client.get("/api/v1/loyalty/rewards/mug", headers=api.auth())
    assert reward.json()["stock_left"] == 1
    unknown = await api.client.post(
        "/api/v1/customers/c-1/loyalty/redemptions/nope/cancel", headers=api.auth()
    )
    assert unknown.status_code == 404


async def test_an_unknown_reward_is_404_and_an_empty_balance_is_409(api: Api) -> None:
    await member(api, "c-1")
    assert (await redeem(api, "c-1", "nothing", "k")).status_code == 404
    await define_reward(api, "tea", cost=100)
    refused = await redeem(api, "c-1", "tea", "k")
    assert refused.status_code == 409
    assert refused.json()["available"] == 0


# --- a customer's points ------------------------------------------------------------------


async def test_balance_tier_progress_expiring_points_and_as_of(api: Api, clock: Clock) -> None:
    rules = {
        "expiry_months": 1,
        "tiers": [
            {"name": "普通会员", "threshold": 0},
            {"name": "silver", "threshold": 100_000, "multiplier": "2"},
        ],
    }
    response = await api.client.put(
        "/api/v1/loyalty/rules", json=rules, headers=api.auth(roles=["marketing"])
    )
    assert response.status_code == 200, response.text
    order = await api.publish(
        "pipeline",
        "c-1",
        OrderPlaced(order_id="o-1", customer_id="c-1", currency="CNY", total=60_000, placed_at=T0),
    )

    async def earned() -> bool:
        response = await api.client.get("/api/v1/customers/c-1/loyalty", headers=api.auth())
        return response.status_code == 200 and response.json()["balance"] == 600

    await eventually(earned)
    account = await api.loyalty("c-1", expiring_within_days=31)
    assert account["tier"] == "普通会员"
    assert account["next_tier"] == {"name": "silver", "threshold": 100_000, "spend_needed": 40_000}
    assert account["expiring_soon"] == [{"expires_at": "2026-04-02T10:00:00+00:00", "points": 600}]
    clock.advance(days=40)
    assert await sweep_expiry(api.app.state.loyalty) == 1
    assert (await api.loyalty("c-1"))["balance"] == 0
    then = await api.loyalty("c-1", as_of=(T0 + timedelta(days=1)).isoformat())
    assert then["balance"] == 600
    lines = await api.ledger("c-1")
    assert [(line["type"].split(".")[2], line["points"]) for line in lines] == [
        ("points_earned", 600),
        ("points_expired", -600),
    ]
    assert lines[0]["source_event_id"] == order[0].id
    # After a version no line can reach: nothing, not a 500 (the column is 32-bit).
    beyond = await api.client.get(
        "/api/v1/customers/c-1/loyalty/ledger", params={"after": 2**41}, headers=api.auth()
    )
    assert beyond.status_code == 200 and beyond.json()["lines"] == []


async def test_a_refund_below_the_threshold_takes_the_tier_away(api: Api) -> None:
    await api.publish(
        "pipeline",
        "c-1",
        OrderPlaced(order_id="o-1", customer_id="c-1", currency="CNY", total=600_000, placed_at=T0),
    )
    await eventually(lambda: _tier_is(api, "c-1", "silver"))
    await api.publish(
        "pipeline",
        "c-1",
        OrderRefunded(
            order_id="o-1",
            customer_id="c-1",
            refund_id="r-1",
            amount=300_000,
            currency="CNY",
            remaining=300_000,
        ),
    )
    await eventually(lambda: _tier_is(api, "c-1", "普通会员"))
    assert (await api.loyalty("c-1"))["balance"] == 3_000


async def test_the_sweep_lowers_the_tier_when_orders_leave_the_window(
    api: Api, clock: Clock
) -> None:
    await api.publish(
        "pipeline",
        "c-1",
        OrderPlaced(order_id="o-1", customer_id="c-1", currency="CNY", total=600_000, placed_at=T0),
    )
    await eventually(lambda: _tier_is(api, "c-1", "silver"))
    clock.advance(days=200)
    assert await sweep_expiry(api.app.state.loyalty) == 0
    clock.advance(days=170)
    assert await sweep_expiry(api.app.state.loyalty) == 1
    assert await _tier_is(api, "c-1", "普通会员")
    assert (await api.loyalty("c-1"))["balance"] == 6_000  # points outlive the tier


async def _tier_is(api: Api, customer_id: str, tier: str) -> bool:
    response = await api.client.get(f"/api/v1/customers/{customer_id}/loyalty", headers=api.auth())
    return response.status_code == 200 and response.json()["tier"] == tier


async def test_another_tenants_customer_and_an_unknown_one_are_404(api: Api) -> None:
    await member(api, "c-1", tenant="globex")
    for path in ("loyalty", "loyalty/ledger"):
        response = await api.client.get(f"/api/v1/customers/c-1/{path}", headers=api.auth())
        assert response.status_code == 404
    check_in = await api.client.post("/api/v1/customers/c-1/loyalty/check-ins", headers=api.auth())
    assert check_in.status_code == 404


async def test_check_in_once_a_day_in_the_tenants_time_zone(api: Api, clock: Clock) -> None:
    await member(api, "c-1")
    rules = {"check_in_points": 5, "streak_bonuses": [{"days": 2, "points": 20}]}
    await api.client.put("/api/v1/loyalty/rules", json=rules, headers=api.auth())
    first = await api.client.post("/api/v1/customers/c-1/loyalty/check-ins", headers=api.auth())
    assert first.status_code == 201 and first.json()["points"] == 5
    again = await api.client.post("/api/v1/customers/c-1/loyalty/check-ins", headers=api.auth())
    assert again.status_code == 409
    clock.advance(days=1)
    second = await api.client.post("/api/v1/customers/c-1/loyalty/check-ins", headers=api.auth())
    assert second.json() == {"day": "2026-03-03", "streak": 2, "points": 25, "balance": 30}


async def test_a_manager_adjusts_with_a_reason_and_never_below_zero(api: Api) -> None:
    await member(api, "c-1")
    await adjust(api, "c-1", 50)
    no_reason = await api.client.post(
        "/api/v1/customers/c-1/loyalty/adjustments",
        json={"points": 5},
        headers=api.auth(roles=["manager"]),
    )
    assert no_reason.status_code == 422 and no_reason.json()["errors"][0]["field"] == "reason"
    too_much = await api.client.post(
        "/api/v1/customers/c-1/loyalty/adjustments",
        json={"points": -51, "reason": "typo"},
        headers=api.auth(roles=["manager"]),
    )
    assert too_much.status_code == 409
    lines = await api.ledger("c-1")
    assert lines[0]["reason"] == "opening balance"


# --- the programme --------------------------------------------------------------------------


async def test_rules_are_validated_and_if_match_guards_them(api: Api) -> None:
    bad = await api.client.put(
        "/api/v1/loyalty/rules", json={"time_zone": "Mars/Olympus"}, headers=api.auth()
    )
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "time_zone"
    typo = await api.client.put(
        "/api/v1/loyalty/rules", json={"point_per_unit": 2}, headers=api.auth()
    )
    assert typo.status_code == 422
    first = await api.client.put("/api/v1/loyalty/rules", json={}, headers=api.auth())
    assert first.headers["ETag"] == '"1"'
    stale = await api.client.put(
        "/api/v1/loyalty/rules", json={}, headers={**api.auth(), "If-Match": '"0"'}
    )
    assert stale.status_code == 412


async def test_statistics_count_members_per_tier_points_per_month_and_liability(
    api: Api,
) -> None:
    await member(api, "c-1")
    await member(api, "c-2")
    await member(api, "c-3")  # no points yet: still a member of the lowest tier
    await adjust(api, "c-1", 300)
    await adjust(api, "c-2", 200)
    await define_reward(api, "tea", cost=100)
    assert (await redeem(api, "c-1", "tea", "k")).status_code == 201
    response = await api.client.get("/api/v1/loyalty/statistics", headers=api.auth())
    body = response.json()
    assert body["members_per_tier"] == {"普通会员": 3}
    assert body["outstanding_points"] == 400
    assert body["months"] == [
        {
            "month": "2026-03",
            "issued": 0,
            "redeemed": 100,
            "expired": 0,
            "clawed_back": 0,
            "adjusted": 500,
        }
    ]


async def test_ledger_events_are_published_on_the_loyalty_topic(api: Api) -> None:
    await member(api, "c-1")
    await adjust(api, "c-1", 42)
    consumer = AIOKafkaConsumer(
        "crm.loyalty.events",
        bootstrap_servers=api.kafka.bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    seen: list[dict[str, Any]] = []
    try:
        deadline = asyncio.get_running_loop().time() + 30
        while not seen and asyncio.get_running_loop().time() < deadline:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                seen += [
                    {
                        "type": dict(r.headers)["ce_type"].decode(),
                        "key": r.key,
                        "data": json.loads(r.value),
                    }
                    for r in records
                ]
    finally:
        await consumer.stop()
    assert [(s["type"], s["key"], s["data"]["points"]) for s in seen] == [
        ("crm.loyalty.points_adjusted.v1", b"c-1", 42)
    ]


@pytest.mark.parametrize(
    ("terms", "field"),
    [({"cost": 2**70}, "cost"), ({"cost": 10, "stock": 2**63}, "stock"), ({"cost": 0}, "cost")],
)
async def test_a_reward_beyond_what_the_ledger_holds_is_a_422_naming_the_field(
    api: Api, terms: dict[str, int], field: str
) -> None:
    response = await api.client.put(
        "/api/v1/loyalty/rewards/huge",
        json={"name": "Tea set"} | terms,
        headers=api.auth(roles=["marketing"]),
    )
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == [field]
