"""Acting on churn risk, on the real broker and PostgreSQL: medium alerts, the weekly
list published Monday 09:00 in the tenant's zone once, overdue follow-up reminders,
a merged duplicate's alert closed, and the per-level gauge."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from libs.events.catalog.alerts import (
    AlertClosed,
    AlertOpened,
    ChurnRiskChanged,
    FollowUpTaskRequested,
    ReminderDue,
    WeeklyRiskListPublished,
)
from libs.events.catalog.contacts import CustomerMergedInto
from libs.events.catalog.pipeline import TaskCompleted, TaskCreated, TaskRescheduled
from services.alerts.handlers import Alerts, publish_weekly_lists, sweep
from services.alerts.tests.conftest import T0, Api, days_before, read_topic
from services.alerts.tests.test_api import (
    complaint,
    complaints_and_a_key_contact_change,
    metric,
    registered,
)
from testing.consumers import Clock


async def stream_types(api: Api, stream_id: str, tenant: str = "acme") -> list[str]:
    return [e.type for e in await api.app.state.alerts.store.read_stream(tenant, stream_id)]


async def test_a_rise_to_medium_opens_an_alert_but_asks_for_no_follow_up(api: Api) -> None:
    opened_before = await metric(api, 'crm_churn_alerts_opened_total{level="medium"}')
    await api.publish("contacts", "c-1", registered("c-1"))
    # Two complaints alone are 25 points: medium once the tenant's bands are lowered.
    rules = (await api.client.get("/api/v1/churn/rules", headers=api.auth())).json()
    saved = await api.client.put(
        "/api/v1/churn/rules",
        json={**rules, "medium_from": 20, "low_from": 5},
        headers=api.auth(),
    )
    assert saved.status_code == 200, saved.text
    await api.publish(
        "tickets", "c-1", complaint("c-1", "t1"), complaint("c-1", "t2"), at=days_before(3)
    )
    await api.caught_up()

    # (Beside a reminder: no interaction with the customer since registration.)
    types = [t for t in await stream_types(api, "c-1") if t != ReminderDue.type_name]
    assert types == [ChurnRiskChanged.type_name, AlertOpened.type_name]
    assert FollowUpTaskRequested.type_name not in types
    response = await api.client.get(
        "/api/v1/churn/alerts", params={"status": "open"}, headers=api.auth()
    )
    (alert,) = response.json()["items"]
    assert (alert["customer_id"], alert["level"]) == ("c-1", "medium")
    assert await metric(api, 'crm_churn_alerts_opened_total{level="medium"}') == opened_before + 1


async def test_rules_name_their_alert_levels_and_a_time_zone_or_say_which_field_is_wrong(
    api: Api,
) -> None:
    rules = (await api.client.get("/api/v1/churn/rules", headers=api.auth())).json()
    assert (rules["alert_levels"], rules["follow_up_levels"], rules["time_zone"]) == (
        ["medium", "high"],
        ["high"],
        "UTC",
    )
    cases: list[tuple[dict[str, object], str]] = [
        ({"alert_levels": ["high"], "follow_up_levels": ["medium"]}, "follow_up_levels"),
        ({"time_zone": "Mars/Olympus"}, "time_zone"),
        ({"alert_levels": ["low"]}, "alert_levels"),
    ]
    for change, field in cases:
        response = await api.client.put(
            "/api/v1/churn/rules", json={**rules, **change}, headers=api.auth()
        )
        assert response.status_code == 422, (change, response.text)
        assert field in response.text


async def test_a_high_risk_at_a_tenant_that_alerts_on_high_only_still_gets_its_follow_up(
    api: Api,
) -> None:
    rules = (await api.client.get("/api/v1/churn/rules", headers=api.auth())).json()
    await api.client.put(
        "/api/v1/churn/rules", json={**rules, "alert_levels": ["high"]}, headers=api.auth()
    )
    await complaints_and_a_key_contact_change(api, "c-1")
    types = await stream_types(api, "c-1")
    assert types.count(AlertOpened.type_name) == 1
    assert types.count(FollowUpTaskRequested.type_name) == 1


async def test_the_weekly_list_is_published_monday_0900_in_the_tenants_zone_once(
    api: Api, clock: Clock
) -> None:
    await complaints_and_a_key_contact_change(api, "c-1")
    await api.publish("contacts", "c-2", registered("c-2", owner="rep-2"))
    await api.caught_up()
    rules = (await api.client.get("/api/v1/churn/rules", headers=api.auth())).json()
    # New York: Monday 09:00 there is 14:00 UTC; T0 is Monday 09:00 UTC.
    await api.client.put(
        "/api/v1/churn/rules",
        json={**rules, "time_zone": "America/New_York"},
        headers=api.auth(),
    )
    alerts: Alerts = api.app.state.alerts
    clock.now = T0 + timedelta(days=7) - timedelta(minutes=1)  # Monday 08:59 UTC
    # Due: the list of W48 (its Monday 09:00 New York passed on 30 Nov, 14:00 UTC).
    assert await publish_weekly_lists(alerts) == 1
    assert await publish_weekly_lists(alerts) == 0  # once
    clock.now = T0 + timedelta(days=7, hours=5)  # Monday 7 Dec, 09:00 in New York
    published = await publish_weekly_lists(alerts)
    assert published == 1  # W49: one owner with a risk
    assert await publish_weekly_lists(alerts) == 0

    stream = await alerts.store.read_stream("acme", "#weekly/2026-W49")
    (event,) = stream
    assert event.type == WeeklyRiskListPublished.type_name
    assert event.data["owner_id"] == "rep-1"
    lists = ("new", "rising", "still_open")
    assert [c for k in lists for c in event.data[k]] == ["c-1"]
    # The event is the list the API gives for that week.
    answer = await api.client.get(
        "/api/v1/churn/weekly", params={"week": "2026-W49"}, headers=api.auth()
    )
    (owner,) = answer.json()["owners"]
    assert {k: [r["customer_id"] for r in owner[k]] for k in lists} == {
        k: event.data[k] for k in lists
    }
    on_topic = await read_topic(
        api.kafka,
        lambda seen: sum(p["type"] == WeeklyRiskListPublished.type_name for p in seen) >= 2,
    )
    weeks = [p["data"]["week"] for p in on_topic if p["type"] == WeeklyRiskListPublished.type_name]
    assert sorted(weeks) == ["2026-W48", "2026-W49"]


async def test_the_weekly_list_survives_a_restart_published_by_the_first_process_only(
    api: Api, clock: Clock
) -> None:
    await complaints_and_a_key_contact_change(api, "c-1")
    first: Alerts = api.app.state.alerts
    # Another process (or this one after a restart) with its own clock at the same time.
    second = Alerts(first.store, clock=clock)
    both = await asyncio.gather(publish_weekly_lists(first), publish_weekly_lists(second))
    assert sorted(both) == [0, 1]
    assert await publish_weekly_lists(second) == 0
    assert await stream_types(api, "#weekly/2026-W48") == [WeeklyRiskListPublished.type_name]


async def test_an_overdue_follow_up_task_reminds_its_assignee_once_until_rescheduled(
    api: Api, clock: Clock
) -> None:
    await api.publish("contacts", "c-1", registered("c-1", days=10))
    await api.publish(
        "pipeline",
        "c-1",
        TaskCreated(
            task_id="task-1",
            customer_id="c-1",
            title="call back",
            due_at=T0 + timedelta(days=1),
            assignee_id="rep-7",
            created_by="rep-1",
        ),
        # A task about a lead only names no customer: not followed.
        TaskCreated(
            task_id="task-2",
            lead_id="lead-1",
            title="qualify",
            due_at=T0,
            assignee_id="rep-7",
            created_by="rep-1",
        ),
    )
    await api.caught_up()
    alerts: Alerts = api.app.state.alerts
    assert await sweep(alerts) == 0

    clock.advance(days=2)
    assert await sweep(alerts) == 1
    assert await sweep(alerts) == 0  # once
    await api.publish(
        "pipeline",
        "c-1",
        TaskRescheduled(
            task_id="task-1",
            customer_id="c-1",
            previous_due_at=T0 + timedelta(days=1),
            due_at=T0 + timedelta(days=3),
        ),
    )
    await api.caught_up()
    assert await sweep(alerts) == 0  # due tomorrow now
    clock.advance(days=2)
    assert await sweep(alerts) == 1  # overdue again: a new reminder
    await api.publish("pipeline", "c-1", TaskCompleted(task_id="task-1", customer_id="c-1", by="x"))
    await api.caught_up()
    clock.advance(days=1)
    assert await sweep(alerts) == 0

    response = await api.client.get(
        "/api/v1/reminders", params={"assignee": "rep-7"}, headers=api.auth()
    )
    items = response.json()["items"]
    assert [(r["kind"], r["subject_id"], r["due_on"]) for r in items] == [
        ("task_overdue", "task-1", "2026-12-01"),
        ("task_overdue", "task-1", "2026-12-03"),
    ]
    assert (await stream_types(api, "c-1")).count(ReminderDue.type_name) == 2


async def test_a_merged_duplicates_open_alert_is_closed_and_the_survivor_carries_the_risk(
    api: Api,
) -> None:
    await complaints_and_a_key_contact_change(api, "dup")
    await api.publish("contacts", "keep", registered("keep"))
    await api.caught_up()
    await api.publish("contacts", "dup", CustomerMergedInto(customer_id="dup", survivor_id="keep"))
    await api.caught_up()

    dup = await api.app.state.alerts.store.read_stream("acme", "dup")
    changed, closed = dup[-2:]
    assert (changed.type, changed.data["to_level"]) == (ChurnRiskChanged.type_name, "none")
    assert closed.type == AlertClosed.type_name
    assert (closed.data["closure"], closed.data["reason"]) == (
        "left_risk_level",
        "merged into keep",
    )
    survivor = await stream_types(api, "keep")
    assert AlertOpened.type_name in survivor and FollowUpTaskRequested.type_name in survivor
    response = await api.client.get("/api/v1/churn/alerts", headers=api.auth())
    statuses = {a["customer_id"]: a["status"] for a in response.json()["items"]}
    assert statuses == {"dup": "left_risk_level", "keep": "open"}
    # The gauge follows the projector: one customer high (the duplicate is not counted).
    assert await metric(api, 'crm_churn_customers{level="high"}') == 1
