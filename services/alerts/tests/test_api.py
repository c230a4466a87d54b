"""Churn risks over HTTP, from other services' events on the real broker, stored in
the real PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime

from libs.events.catalog.alerts import (
    AlertOpened,
    ChurnRiskChanged,
    ChurnRiskRaised,
    FollowUpTaskRequested,
    ReminderDue,
)
from libs.events.catalog.contacts import (
    CustomerMergedInto,
    CustomerRegistered,
    KeyContactChanged,
    OwnerChanged,
)
from libs.events.catalog.pipeline import ContractSigned, OrderCancelled, OrderPlaced
from libs.events.catalog.tickets import NpsAnswered, TicketOpened
from libs.events.store import EventStore
from services.alerts.handlers import sweep
from services.alerts.tests.conftest import Api, days_before, read_topic
from testing.consumers import Clock


def registered(
    customer_id: str, owner: str | None = "rep-1", days: float = 400
) -> CustomerRegistered:
    return CustomerRegistered(
        customer_id=customer_id,
        tenant_id="acme",
        kind="company",
        name=f"Customer {customer_id}",
        owner_id=owner,
        registered_at=days_before(days),
    )


async def metric(api: Api, name: str) -> float:
    """One sample of /metrics (0 when not exposed yet)."""
    text = (await api.client.get("/metrics")).text
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


def complaint(customer_id: str, ticket_id: str) -> TicketOpened:
    return TicketOpened(
        ticket_id=ticket_id,
        customer_id=customer_id,
        subject="late delivery",
        channel="phone",
        category="complaint",
        priority="high",
        opened_by="agent-1",
    )


def order(customer_id: str, order_id: str, days: float) -> OrderPlaced:
    return OrderPlaced(
        order_id=order_id,
        customer_id=customer_id,
        currency="CNY",
        total=10_000,
        placed_at=days_before(days),
    )


async def complaints_and_a_key_contact_change(api: Api, customer_id: str) -> dict[str, str]:
    await api.publish("contacts", customer_id, registered(customer_id))
    (first,) = await api.publish(
        "tickets", customer_id, complaint(customer_id, "t1"), at=days_before(12)
    )
    (second,) = await api.publish(
        "tickets", customer_id, complaint(customer_id, "t2"), at=days_before(2)
    )
    (change,) = await api.publish(
        "contacts",
        customer_id,
        KeyContactChanged(
            customer_id=customer_id, role="purchasing", previous_contact_id="p-1", contact_id="p-2"
        ),
        at=days_before(5),
    )
    await api.caught_up()
    return {"first": first, "second": second, "change": change}


async def test_complaints_and_a_key_contact_change_make_a_high_risk_with_both_reasons(
    api: Api,
) -> None:
    ids = await complaints_and_a_key_contact_change(api, "c-1")

    risk = await api.risk("c-1")

    assert risk["customer_id"] == "c-1" and risk["level"] == "high"
    assert risk["score"] == 65 and risk["owner_id"] == "rep-1"
    reasons = {r["signal"]: r for r in risk["reasons"]}
    assert set(reasons) == {"key_contact_changed", "complaints_increase"}
    assert reasons["key_contact_changed"]["event_ids"] == [ids["change"]]
    assert reasons["complaints_increase"]["event_ids"] == [ids["second"], ids["first"]]
    assert reasons["complaints_increase"]["sentence"].startswith("2 complaints in the last 30 days")
    assert reasons["complaints_increase"]["figures"] == {
        "complaints": 2, "breaches": 0, "window_days": 30, "before": 0}


async def test_a_rise_to_high_is_published_once(api: Api) -> None:
    await complaints_and_a_key_contact_change(api, "c-1")
    # A detractor's answer raises the score, and the customer stays high: no second rise.
    await api.publish(
        "tickets",
        "c-1",
        NpsAnswered(survey_id="s1", customer_id="c-1", score=3, group="detractor"),
        at=days_before(1),
    )
    await api.caught_up()

    store: EventStore = api.app.state.alerts.store
    stream = await store.read_stream("acme", "c-1")
    types = [e.type for e in stream]
    assert types.count(ChurnRiskRaised.type_name) == 1
    assert types[0] == ChurnRiskChanged.type_name
    raised = next(e for e in stream if e.type == ChurnRiskRaised.type_name)
    assert raised.data["score"] == 65 and raised.data["owner_id"] == "rep-1"

    published = await read_topic(
        api.kafka, lambda seen: any(p["type"] == ChurnRiskRaised.type_name for p in seen)
    )
    assert [p["type"] for p in published].count(ChurnRiskRaised.type_name) == 1
    (task,) = [e for e in stream if e.type == FollowUpTaskRequested.type_name]
    assert task.data["owner_id"] == "rep-1" and task.data["customer_id"] == "c-1"
    assert types.count(AlertOpened.type_name) == 1


async def test_every_customer_is_ranked_by_score_those_without_a_signal_at_zero(
    api: Api,
) -> None:
    await complaints_and_a_key_contact_change(api, "c-1")
    await api.publish("contacts", "c-2", registered("c-2", owner="rep-2"))
    await api.publish(
        "tickets",
        "c-3",
        NpsAnswered(survey_id="s1", customer_id="c-3", score=2, group="detractor"),
        at=days_before(3),
    )
    await api.caught_up()

    page = await api.risks()

    assert [(i["customer_id"], i["level"]) for i in page["items"]] == [
        ("c-1", "high"),
        ("c-3", "low"),
        ("c-2", "none"),
    ]
    assert page["items"][2]["score"] == 0 and page["items"][2]["reasons"] == []
    assert [i["customer_id"] for i in (await api.risks(level="high"))["items"]] == ["c-1"]
    assert [i["customer_id"] for i in (await api.risks(owner_id="rep-2"))["items"]] == ["c-2"]


async def test_pages_follow_the_cursor_at_the_first_pages_as_of(api: Api) -> None:
    await complaints_and_a_key_contact_change(api, "c-1")
    for n in (2, 3, 4):
        await api.publish("contacts", f"c-{n}", registered(f"c-{n}"))
    await api.caught_up()

    first = await api.risks(limit=2)
    second = await api.risks(cursor=first["next_cursor"], limit=2)

    # Never bought, no signal: tied, by id descending (the page index's order).
    assert [i["customer_id"] for i in first["items"]] == ["c-1", "c-4"]
    assert [i["customer_id"] for i in second["items"]] == ["c-3", "c-2"]
    assert second["as_of"] == first["as_of"] and second["next_cursor"] is None


async def test_scoring_as_of_a_past_date_reads_only_the_events_of_then(api: Api) -> None:
    """History replayed with its own times scores as it would have on each day."""
    await api.publish("contacts", "c-1", registered("c-1", days=800))
    placed = [order("c-1", f"o{n}", n) for n in (700, 670, 640, 610, 580, 550, 520, 490)]
    await api.publish("pipeline", "c-1", *placed)
    await api.caught_up()

    buying = await api.risk("c-1", as_of=days_before(480).date().isoformat())
    stopped = await api.risk("c-1", as_of=days_before(300).date().isoformat())
    before_any = await api.risks(as_of=days_before(900).date().isoformat())

    assert buying["score"] == 0
    # Stopped, not slowed: overdue tells it (decision 0055: not counted twice).
    assert {r["signal"] for r in stopped["reasons"]} == {"order_overdue"}
    assert stopped["level"] == "high"
    assert before_any["items"] == []  # not yet a customer then


async def test_a_cancelled_order_stops_counting_from_its_cancellation(api: Api) -> None:
    await api.publish("contacts", "c-1", registered("c-1"))
    placed = [order("c-1", f"o{n}", n) for n in (330, 300, 270, 240, 210, 180, 150, 120)]
    await api.publish("pipeline", "c-1", *placed, order("c-1", "late", 10))
    await api.publish(
        "pipeline", "c-1", OrderCancelled(order_id="late", customer_id="c-1"), at=days_before(9)
    )
    await api.caught_up()

    assert "order_overdue" in {r["signal"] for r in (await api.risk("c-1"))["reasons"]}


async def test_a_merged_duplicates_facts_count_for_the_survivor(api: Api) -> None:
    await api.publish("contacts", "dup", registered("dup"))
    await api.publish("contacts", "keep", registered("keep"))
    await api.publish(
        "tickets", "dup", complaint("dup", "t1"), complaint("dup", "t2"), at=days_before(3)
    )
    await api.caught_up()  # the complaints are filed under the duplicate first
    await api.publish("contacts", "dup", CustomerMergedInto(customer_id="dup", survivor_id="keep"))
    await api.publish(
        "contacts",
        "keep",
        KeyContactChanged(customer_id="keep", role="ceo", previous_contact_id="a", contact_id="b"),
        at=days_before(1),
    )
    await api.caught_up()

    survivor = await api.risk("keep")
    assert {r["signal"] for r in survivor["reasons"]} == {
        "key_contact_changed",
        "complaints_increase",
    }
    assert survivor["level"] == "high"
    missing = await api.client.get("/api/v1/customers/dup/churn-risk", headers=api.auth())
    assert missing.status_code == 404
    assert [i["customer_id"] for i in (await api.risks())["items"]] == ["keep"]


async def test_the_owner_filter_follows_owner_changes(api: Api) -> None:
    await api.publish("contacts", "c-1", registered("c-1", owner="rep-1"))
    await api.publish(
        "contacts",
        "c-1",
        OwnerChanged(customer_id="c-1", from_owner_id="rep-1", to_owner_id="rep-9"),
    )
    await api.caught_up()
    assert [i["customer_id"] for i in (await api.risks(owner_id="rep-9"))["items"]] == ["c-1"]
    assert (await api.risks(owner_id="rep-1"))["items"] == []


async def test_a_contract_ending_without_renewal_is_a_reason(api: Api) -> None:
    await api.publish("contacts", "c-1", registered("c-1"))
    (signed,) = await api.publish(
        "pipeline",
        "c-1",
        ContractSigned(
            contract_id="k1",
            customer_id="c-1",
            title="support",
            value=1,
            currency="CNY",
            starts_on=date(2026, 1, 1),
            ends_on=date(2026, 12, 20),
        ),
        at=days_before(300),
    )
    await api.caught_up()

    (reason,) = (await api.risk("c-1"))["reasons"]
    assert reason["signal"] == "contract_ending" and reason["event_ids"] == [signed]


async def test_another_tenants_customer_is_not_found(api: Api) -> None:
    await complaints_and_a_key_contact_change(api, "c-1")
    response = await api.client.get("/api/v1/customers/c-1/churn-risk", headers=api.auth("other"))
    assert response.status_code == 404
    assert (await api.risks("other"))["items"] == []


async def test_the_tenants_rules_change_the_score(api: Api, clock: Clock) -> None:
    await complaints_and_a_key_contact_change(api, "c-1")
    rules = (await api.client.get("/api/v1/churn/rules", headers=api.auth())).json()
    rules["signals"]["key_contact_changed"]["enabled"] = False

    saved = await api.client.put("/api/v1/churn/rules", json=rules, headers=api.auth())

    assert saved.status_code == 200, saved.text
    risk = await api.risk("c-1")
    assert [r["signal"] for r in risk["reasons"]] == ["complaints_increase"]
    assert risk["level"] == "low"
    stale = await api.client.put(
        "/api/v1/churn/rules", json=rules, headers={**api.auth(), "If-Match": '"0"'}
    )
    assert stale.status_code == 412


async def test_two_managers_saving_rules_at_once_both_succeed(api: Api) -> None:
    """Without If-Match the later save is decided again on the fresher version (a lost
    race is the shared write path's retry, not a 500)."""
    rules = (await api.client.get("/api/v1/churn/rules", headers=api.auth())).json()
    saves = await asyncio.gather(
        *(
            api.client.put("/api/v1/churn/rules", json=rules, headers=api.auth())
            for _ in range(6)
        )
    )

    assert [s.status_code for s in saves] == [200] * 6, [s.text for s in saves]
    assert sorted(int(s.headers["ETag"].strip('"')) for s in saves) == list(range(1, 7))


async def test_bad_input_names_the_field(api: Api) -> None:
    cases = [
        ("/api/v1/churn/risks", {"as_of": "yesterday"}, "as_of"),
        ("/api/v1/churn/risks", {"as_of": "2026-11-30T10:00:00"}, "as_of"),
        ("/api/v1/churn/risks", {"cursor": "bm9wZQ"}, "cursor"),
        ("/api/v1/churn/risks", {"level": "dire"}, "level"),
        ("/api/v1/churn/risks", {"limit": "0"}, "limit"),
    ]
    for path, params, name in cases:
        response = await api.client.get(path, params=params, headers=api.auth())
        assert response.status_code == 422, (params, response.text)
        assert name in response.text
    rules = (await api.client.get("/api/v1/churn/rules", headers=api.auth())).json()
    inverted = {**rules, "high_from": 20, "medium_from": 30}
    response = await api.client.put("/api/v1/churn/rules", json=inverted, headers=api.auth())
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "high_from"
    unknown = {**rules, "signals": {"weather": {"weight": 1, "window_days": 1, "threshold": 1}}}
    response = await api.client.put("/api/v1/churn/rules", json=unknown, headers=api.auth())
    assert response.status_code == 422


async def test_as_of_a_time_with_its_offset_is_honoured(api: Api) -> None:
    await complaints_and_a_key_contact_change(api, "c-1")
    # Shanghai's morning of the 25th: hours before the key contact changed (09:00 UTC).
    before = await api.risk("c-1", as_of="2026-11-25T08:00:00+08:00")
    after = await api.risk("c-1", as_of="2026-11-25T18:00:00+08:00")

    assert before["as_of"] == datetime(2026, 11, 25, 0, tzinfo=UTC).isoformat()
    assert before["reasons"] == []
    assert [r["signal"] for r in after["reasons"]] == ["key_contact_changed"]


async def test_a_customer_becoming_overdue_with_time_alone_is_raised_by_the_sweep(
    api: Api, clock: Clock
) -> None:
    await api.publish("contacts", "c-1", registered("c-1"))
    placed = [order("c-1", f"o{n}", n) for n in (150, 120, 90, 60, 30, 5)]
    await api.publish("pipeline", "c-1", *placed)
    await api.caught_up()
    alerts = api.app.state.alerts
    assert await sweep(alerts) == 0  # buying at their rhythm

    opened_before = await metric(api, 'crm_churn_alerts_opened_total{level="high"}')
    clock.advance(days=120)
    appended = await sweep(alerts)
    again = await sweep(alerts)

    assert await metric(api, 'crm_churn_customers{level="high"}') == 1
    assert await metric(api, 'crm_churn_alerts_opened_total{level="high"}') == opened_before + 1

    stream = await alerts.store.read_stream("acme", "c-1")
    assert [e.type for e in stream].count(ChurnRiskRaised.type_name) == 1
    # Risk changed and raised, alert opened, follow-up requested; nothing more after.
    assert (appended, again) == (4, 0)
    (raised,) = [e for e in stream if e.type == ChurnRiskRaised.type_name]
    assert {r["signal"] for r in raised.data["reasons"]} == {"order_overdue"}


async def test_reminders_fire_once_for_the_owner_and_are_listed_by_assignee(
    api: Api, clock: Clock
) -> None:
    await api.publish("contacts", "c-1", registered("c-1", owner="rep-1", days=10))
    await api.publish(
        "pipeline",
        "c-1",
        ContractSigned(
            contract_id="k1",
            customer_id="c-1",
            title="support",
            value=1,
            currency="CNY",
            starts_on=date(2026, 1, 1),
            ends_on=date(2027, 1, 20),
        ),
        at=days_before(300),
    )
    await api.caught_up()
    alerts = api.app.state.alerts

    async def reminders_due() -> int:
        stream = await alerts.store.read_stream("acme", "c-1")
        return [e.type for e in stream].count(ReminderDue.type_name)

    assert await sweep(alerts) == 0  # the contract ends in 51 days; registered 10 days ago

    clock.advance(days=25)  # the contract ends in 26 days
    await sweep(alerts)
    assert await reminders_due() == 1
    assert await sweep(alerts) == 0  # once
    clock.advance(days=30)  # 65 days without an interaction since registration
    await sweep(alerts)
    # The reminder, and the risk falling back to none now that the contract has ended.
    assert await reminders_due() == 2
    assert (await api.risk("c-1"))["level"] == "none"

    response = await api.client.get(
        "/api/v1/reminders", params={"assignee": "rep-1"}, headers=api.auth()
    )
    assert response.status_code == 200, response.text
    kinds = [(r["kind"], r["due_on"]) for r in response.json()["items"]]
    assert kinds == [("contract_renewal", "2027-01-20"), ("no_interaction", "2027-01-24")]
    assert response.json()["items"][0]["sentence"].startswith("Contract k1 ends in 26 days")
    stream = await alerts.store.read_stream("acme", "c-1")
    assert [e.type for e in stream].count(ReminderDue.type_name) == len(kinds)
    nobody = await api.client.get(
        "/api/v1/reminders", params={"assignee": "rep-2"}, headers=api.auth()
    )
    assert nobody.json()["items"] == []
