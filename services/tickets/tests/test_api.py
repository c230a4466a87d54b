"""The tickets API over HTTP, against real PostgreSQL and the real broker."""

from __future__ import annotations

from datetime import timedelta

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
