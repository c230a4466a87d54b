"""The tickets API over HTTP, against real PostgreSQL and the real broker."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from services.tickets.tests.conftest import Api, MovableClock

STANDARD_POLICY = {
    "targets": {
        "normal": {"first_response_minutes": 60, "resolution_minutes": 480},
        "urgent": {"first_response_minutes": 15, "resolution_minutes": 120},
    }
}


async def test_a_ticket_for_an_unknown_customer_is_a_404_naming_the_field(api: Api) -> None:
    response = await api.post("/api/v1/tickets", {"customer_id": "nobody", "subject": "Hi"})

    assert response.status_code == 404
    assert response.json()["field"] == "customer_id"


async def test_a_customer_registered_a_moment_ago_can_open_a_ticket(api: Api) -> None:
    customer = await api.register()

    opened = await api.open(customer, category="complaint", priority="high")

    assert opened["customer_id"] == customer
    assert (opened["status"], opened["category"], opened["version"]) == ("open", "complaint", 1)


async def test_another_tenant_s_customer_and_ticket_do_not_exist(api: Api) -> None:
    customer = await api.register(tenant="acme")
    response = await api.post(
        "/api/v1/tickets", {"customer_id": customer, "subject": "Hi"}, tenant="globex"
    )
    assert response.status_code == 404

    ticket = await api.open(customer)
    assert (await api.get(f"/api/v1/tickets/{ticket['id']}", tenant="globex")).status_code == 404
    theirs = await api.get(f"/api/v1/customers/{customer}/tickets", tenant="globex")
    assert theirs.status_code == 404, theirs.text
    without_tickets = await api.register(tenant="acme")
    none_yet = await api.get(f"/api/v1/customers/{without_tickets}/tickets", tenant="acme")
    assert (none_yet.status_code, none_yet.json()["items"]) == (200, [])


async def test_the_ticket_shows_its_sla_targets_in_business_hours(
    api: Api, clock: MovableClock
) -> None:
    assert (await api.put("/api/v1/sla-policies/default", STANDARD_POLICY)).status_code == 200
    customer = await api.register()
    ticket = await api.open(customer)
    clock.advance(timedelta(minutes=20))

    view = (await api.get(f"/api/v1/tickets/{ticket['id']}")).json()

    first = view["sla"]["targets"]["first_response"]
    assert first["clock"] == "running"
    assert first["due_at"] == "2026-12-07T03:00:00Z"
    assert first["business_seconds_left"] == 40 * 60
    assert view["sla"]["targets"]["resolution"]["due_at"] == "2026-12-07T10:00:00Z"


async def test_a_complaint_closes_only_after_a_satisfied_follow_up_visit(api: Api) -> None:
    customer = await api.register()
    ticket = (await api.open(customer, category="complaint"))["id"]
    path = f"/api/v1/tickets/{ticket}"
    assert (await api.post(f"{path}/status", {"status": "solved"})).status_code == 200

    refused = await api.post(f"{path}/status", {"status": "closed"})
    assert refused.status_code == 409
    assert refused.json()["reason"] == "follow_up_visit_required"

    unhappy = await api.post(
        f"{path}/follow-up-visits", {"satisfied": False, "outcome": "仍有异响"}
    )
    assert (unhappy.status_code, unhappy.json()["status"]) == (201, "open")

    await api.post(f"{path}/status", {"status": "solved"})
    happy = await api.post(f"{path}/follow-up-visits", {"satisfied": True})
    assert happy.status_code == 201
    closed = await api.post(f"{path}/status", {"status": "closed"})
    assert (closed.status_code, closed.json()["status"]) == (200, "closed")
    assert (await api.post(f"{path}/replies", {"body": "again"})).status_code == 409


async def test_if_match_makes_a_change_conditional(api: Api) -> None:
    customer = await api.register()
    ticket = (await api.open(customer))["id"]
    path = f"/api/v1/tickets/{ticket}/assignment"

    stale = await api.post(path, {"assignee_id": "agent-7"}, **{"If-Match": '"7"'})
    assert stale.status_code == 412
    fresh = await api.post(path, {"assignee_id": "agent-7"}, **{"If-Match": '"1"'})
    assert (fresh.status_code, fresh.headers["ETag"]) == (200, '"2"')


async def test_tickets_are_listed_newest_first_by_filter_and_cursor(
    api: Api, clock: MovableClock
) -> None:
    first, second = await api.register(), await api.register(name="李雷")
    ids = []
    for customer, priority in [(first, "low"), (second, "high"), (first, "high")]:
        ids.append((await api.open(customer, priority=priority))["id"])
        clock.advance(timedelta(minutes=1))

    page = (await api.get("/api/v1/tickets", limit=2)).json()
    rest = (await api.get("/api/v1/tickets", limit=2, cursor=page["next_cursor"])).json()
    assert [t["id"] for t in page["items"] + rest["items"]] == ids[::-1]
    assert rest["next_cursor"] is None

    high = (await api.get("/api/v1/tickets", priority="high")).json()["items"]
    assert [t["id"] for t in high] == [ids[2], ids[1]]
    mine = (await api.get(f"/api/v1/customers/{first}/tickets")).json()["items"]
    assert [t["id"] for t in mine] == [ids[2], ids[0]]
    assert (await api.get("/api/v1/tickets", cursor="nonsense")).status_code == 422


async def test_pending_pauses_the_resolution_clock(api: Api, clock: MovableClock) -> None:
    assert (await api.put("/api/v1/sla-policies/default", STANDARD_POLICY)).status_code == 200
    ticket = (await api.open(await api.register()))["id"]
    clock.advance(timedelta(hours=2))
    await api.post(f"/api/v1/tickets/{ticket}/status", {"status": "pending"})
    clock.advance(timedelta(days=3))

    resolution = (await api.get(f"/api/v1/tickets/{ticket}")).json()["sla"]["targets"]["resolution"]
    assert (resolution["clock"], resolution["due_at"]) == ("paused", None)
    assert resolution["business_seconds_left"] == 6 * 3600


async def test_a_policy_measures_in_its_own_calendar_with_holidays(
    api: Api, clock: MovableClock
) -> None:
    calendar = {
        "week": {
            d: [{"start": "09:00", "end": "18:00"}] for d in ("mon", "tue", "wed", "thu", "fri")
        },
        "holidays": ["2026-12-08"],
    }
    assert (await api.put("/api/v1/business-calendars/cn", calendar)).status_code == 200
    policy = {"calendar": "cn", "targets": {"normal": {"resolution_minutes": 600}}}
    assert (await api.put("/api/v1/sla-policies/default", policy)).status_code == 200

    ticket = (await api.open(await api.register()))["id"]
    view = (await api.get(f"/api/v1/tickets/{ticket}")).json()

    # Monday 10:00 + 10 business hours: 8 on Monday, Tuesday a holiday, 2 on Wednesday.
    assert view["sla"]["targets"]["resolution"]["due_at"] == "2026-12-09T03:00:00Z"
    assert view["sla"]["calendar_version"] == 1


async def test_bad_input_is_a_422_naming_the_field(api: Api) -> None:
    customer = await api.register()
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("/api/v1/tickets", {"customer_id": customer, "subject": "x", "priority": "asap"}, "post"),
        ("/api/v1/tickets", {"customer_id": customer, "subject": "a\x00b"}, "post"),
        # PostgreSQL stores no NUL: each of these was a 500 before the platform refused it.
        (
            "/api/v1/tickets",
            {"customer_id": customer, "subject": "x", "requester_name": "\x00"},
            "post",
        ),
        ("/api/v1/dispatch-rules", {"rules": [{"name": "\x00", "group": "g"}]}, "put"),
        (
            "/api/v1/tickets",
            {"customer_id": customer, "subject": "x", "sla_policy": "gold"},
            "post",
        ),
        ("/api/v1/business-calendars/x", {"week": {"mon": []}, "time_zone": "Mars/Base"}, "put"),
        (
            "/api/v1/business-calendars/x",
            {"week": {"mon": [{"start": "18:00", "end": "09:00"}]}},
            "put",
        ),
        ("/api/v1/sla-policies/x", {"calendar": "nope", "targets": {}}, "put"),
        (
            "/api/v1/business-calendars/standard",
            {"week": {"mon": [{"start": "09:00", "end": "18:00"}]}},
            "put",
        ),
        ("/api/v1/sla-policies/x", {"targets": {"normal": {"resolution_minutes": 0}}}, "put"),
    ]
    for path, body, method in cases:
        response = await (api.post(path, body) if method == "post" else api.put(path, body))
        assert response.status_code == 422, (body, response.text)
        assert response.json()["errors"][0]["field"], response.text


async def test_other_streams_of_the_tenant_are_not_tickets(api: Api) -> None:
    assert (await api.put("/api/v1/sla-policies/default", STANDARD_POLICY)).status_code == 200
    assert (await api.put("/api/v1/dispatch-rules", {"rules": []})).status_code == 200

    for stream in ("sla-policy:default", "dispatch-rules"):
        assert (await api.get(f"/api/v1/tickets/{stream}")).status_code == 404
        reply = await api.post(f"/api/v1/tickets/{stream}/replies", {"body": "x"})
        assert reply.status_code == 404


async def test_a_tag_specific_target_is_stricter_for_that_customer(api: Api) -> None:
    policy = {
        **STANDARD_POLICY,
        "by_tag": {"VIP": {"normal": {"first_response_minutes": 10, "resolution_minutes": 60}}},
    }
    assert (await api.put("/api/v1/sla-policies/default", policy)).status_code == 200
    vip = await api.register(tags=["VIP"])
    regular = await api.register(name="李雷")

    for customer, minutes in [(vip, 10), (regular, 60)]:
        ticket = (await api.open(customer))["id"]
        view = (await api.get(f"/api/v1/tickets/{ticket}")).json()
        assert view["sla"]["targets"]["first_response"]["target_minutes"] == minutes
