"""Segments: saved filters and built-ins, their members as of any time, and entering or
leaving one as an event other systems read from the analytics topic."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiokafka import AIOKafkaConsumer

from libs.events.catalog.alerts import ChurnRiskChanged
from libs.events.catalog.contacts import CustomerTagged, OwnerChanged
from libs.events.catalog.loyalty import TierChanged
from libs.events.catalog.tickets import NpsAnswered
from libs.events.kafka import KafkaSettings, service_topic
from services.analytics.handlers.segments import sweep
from services.analytics.tests.conftest import Api
from services.analytics.tests.histories import FEBRUARY, JANUARY, at, publish_history
from testing.consumers import Clock


async def put(
    api: Api, name: str, body: dict[str, Any], role: str = "marketing", **headers: str
) -> Any:
    return await api.client.put(
        f"/api/v1/analytics/segments/{name}",
        json=body,
        headers={**api.auth(roles=[role]), **headers},
    )


async def stream(api: Api, name: str) -> list[tuple[str, str]]:
    events = await api.app.state.analytics.store.read_stream("acme", f"#segment:{name}")
    return [(e.type.split(".")[2], e.data.get("customer_id", "")) for e in events]


async def read_topic(
    kafka: KafkaSettings, want: int, timeout: float = 30.0
) -> list[dict[str, Any]]:
    consumer = AIOKafkaConsumer(
        service_topic("analytics"),
        bootstrap_servers=kafka.bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    seen: dict[str, dict[str, Any]] = {}
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while len(seen) < want and asyncio.get_running_loop().time() < deadline:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                for r in records:
                    headers = dict(r.headers)
                    seen[headers["ce_id"].decode()] = {
                        "type": headers["ce_type"].decode(),
                        "data": json.loads(r.value),
                    }
    finally:
        await consumer.stop()
    return list(seen.values())


async def test_a_saved_segment_announces_who_entered_and_answers_as_of_any_time(
    api: Api, clock: Clock
) -> None:
    await publish_history(api)
    await api.caught_up()

    saved = await put(api, "big-spenders", {"total_spent_min": 5000})

    assert saved.status_code == 201, saved.text
    assert saved.json()["member_count"] == 4 and saved.headers["ETag"]
    assert await stream(api, "big-spenders") == [
        ("segment_defined", ""),
        *[("customer_entered_segment", c) for c in JANUARY],
    ]
    published = await read_topic(api.kafka, 5)
    entered = [m for m in published if m["type"].endswith("customer_entered_segment.v1")]
    assert sorted(m["data"]["customer_id"] for m in entered) == JANUARY

    # In March they had spent 3,000 each: nobody was in it then.
    march = await api.get("segments/big-spenders", as_of="2026-03-31")
    assert march["member_count"] == 0
    now = await api.get("segments/big-spenders")
    assert now["member_count"] == 4 and now["history"][0]["entered"] == 4
    first = await api.get("segments/big-spenders/members", limit=3)
    rest = await api.get("segments/big-spenders/members", cursor=first["next_cursor"], limit=3)
    assert [c["customer_id"] for c in first["items"] + rest["items"]] == JANUARY
    assert rest["next_cursor"] is None

    # Every figure takes the segment.
    clv = await api.get("clv", segment="big-spenders", **{"from": "2026-01-01"})
    assert (clv["customers"], clv["value"]) == (4, 6000.0)
    cohorts = await api.get("retention", segment="big-spenders", as_of="2026-06-30")
    assert [(r["cohort"], r["buyers"]) for r in cohorts["table"]] == [("2026-01", [4] * 6)]

    # Replaced: those who no longer match leave, once.
    replaced = await put(
        api,
        "big-spenders",
        {"total_spent_min": 5000, "tags_any": ["vip-club"]},
        **{"If-Match": saved.headers["ETag"]},
    )
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["member_count"] == 0
    assert [e for e in await stream(api, "big-spenders") if e[0] == "customer_left_segment"] == [
        ("customer_left_segment", c) for c in JANUARY
    ]
    stale = await put(api, "big-spenders", {}, **{"If-Match": saved.headers["ETag"]})
    assert stale.status_code == 412


async def test_profile_filters_read_each_attribute_as_it_stood(api: Api) -> None:
    await publish_history(api)
    await api.publish(
        "contacts", "jan-0", CustomerTagged(customer_id="jan-0", tag="b2b"), at=at(5, 1)
    )
    await api.publish(
        "contacts",
        "jan-1",
        OwnerChanged(customer_id="jan-1", from_owner_id=None, to_owner_id="u-7"),
        at=at(5, 1),
    )
    await api.publish(
        "loyalty",
        "jan-2",
        TierChanged(
            customer_id="jan-2",
            from_tier="base",
            to_tier="gold",
            qualifying_spend=5000,
            reason="order",
            changed_at=at(5, 2),
        ),
    )
    await api.publish(
        "alerts",
        "jan-3",
        ChurnRiskChanged(
            customer_id="jan-3", from_level="none", to_level="high", score=70, as_of=at(5, 3)
        ),
    )
    await api.publish(
        "tickets",
        "feb-0",
        NpsAnswered(survey_id="s-1", customer_id="feb-0", score=3, group="detractor"),
        at=at(5, 4),
    )
    await api.caught_up()

    cases: dict[str, tuple[dict[str, object], list[str]]] = {
        "tagged": ({"tags_all": ["b2b"]}, ["jan-0"]),
        "owned": ({"owner_ids": ["u-7"]}, ["jan-1"]),
        "gold": ({"loyalty_tiers": ["gold"]}, ["jan-2"]),
        "risky": ({"churn_levels": ["high"]}, ["jan-3"]),
        "detractors": ({"nps_groups": ["detractor"]}, ["feb-0"]),
        "quiet": (
            {"last_order_before": "2026-04-01T00:00:00Z", "order_count_min": 1},
            [*FEBRUARY, "refunded"],
        ),
    }
    for name, (body, members) in cases.items():
        assert (await put(api, name, body)).status_code == 201, name
        found = await api.get(f"segments/{name}/members")
        assert [c["customer_id"] for c in found["items"]] == members, name
        # On April 30th none of the profile changes had happened yet.
        if name != "quiet":
            assert (await api.get(f"segments/{name}", as_of="2026-04-30"))["member_count"] == 0


async def test_built_in_segments_and_time_alone_moving_customers(api: Api, clock: Clock) -> None:
    await publish_history(api)
    response = await api.client.put(
        "/api/v1/analytics/settings",
        json={
            "lost_after_days": 45,
            "at_risk_after_days": 25,
            "vip_spend_from": 6000,
            "growth_spend_from": 2000,
        },
        headers=api.auth(),
    )
    assert response.status_code == 200, response.text
    await api.caught_up()

    def names(page: Any) -> list[str]:
        return [c["customer_id"] for c in page["items"]]

    assert names(await api.get("segments/vip/members")) == JANUARY
    assert names(await api.get("segments/growth/members")) == FEBRUARY
    assert names(await api.get("segments/normal/members")) == ["refunded"]
    assert names(await api.get("segments/lost/members")) == [*FEBRUARY, "refunded"]
    assert names(await api.get("segments/at-risk/members")) == []
    listed = {s["name"] for s in (await api.get("segments"))["items"]}
    assert {"vip", "growth", "normal", "new", "at-risk", "lost"} <= listed
    refused = await put(api, "vip", {})
    assert refused.status_code == 409

    await sweep(api.app.state.analytics)
    assert [c for t, c in await stream(api, "lost") if t == "customer_entered_segment"] == [
        *FEBRUARY,
        "refunded",
    ]
    # Five days on, January's cohort (last order June 10th) is at risk: announced once.
    clock.advance(days=5)
    await sweep(api.app.state.analytics)
    await sweep(api.app.state.analytics)
    assert [c for t, c in await stream(api, "at-risk")] == JANUARY


async def test_who_may_define_segments_and_whose_they_are(api: Api) -> None:
    await publish_history(api)
    await api.caught_up()

    assert (await put(api, "mine", {}, role="sales")).status_code == 403
    assert (await put(api, "mine", {}, role="viewer")).status_code == 403
    assert (await put(api, "mine", {"kinds": ["robot"]})).status_code == 422
    assert (await put(api, "mine", {"unknown": 1})).status_code == 422
    assert (await put(api, "Bad Name", {})).status_code == 422
    # What the database could not store or compare is refused, naming the field.
    refusals: list[tuple[dict[str, object], str]] = [
        ({"tags_any": ["vip\x00"]}, "tags_any"),
        ({"attributes": {"seats": "a\x00b"}}, "attributes"),
        ({"last_order_before": "0001-01-01T00:00:00+14:00"}, "last_order_before"),
    ]
    for refused, field in refusals:
        answer = await put(api, "mine", refused)
        assert answer.status_code == 422, answer.text
        assert field in answer.text
    assert (await put(api, "mine", {}, role="manager")).status_code == 201
    other = await api.client.get("/api/v1/analytics/segments/mine", headers=api.auth("globex"))
    assert other.status_code == 404
    assert (await api.get("segments/mine"))["member_count"] == 8
