"""Follow-up tasks and contracts over HTTP, on real PostgreSQL and the real broker."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from services.pipeline.tests.conftest import Api


async def test_my_overdue_follow_ups(api: Api) -> None:
    customer = await api.register()
    now = datetime.now(UTC)
    due = {"overdue": now - timedelta(hours=2), "later": now + timedelta(days=3)}
    ids: dict[str, str] = {}
    for name, at in due.items():
        created = await api.client.post(
            "/api/v1/tasks",
            json={
                "customer_id": customer,
                "title": f"call back ({name})",
                "due_at": at.isoformat(),
            },
            headers=api.auth(roles=["sales"], subject="u-7"),
        )
        assert created.status_code == 201, created.text
        ids[name] = created.json()["id"]
    someone_else = await api.client.post(
        "/api/v1/tasks",
        json={
            "customer_id": customer,
            "title": "x",
            "due_at": due["overdue"].isoformat(),
            "assignee_id": "u-8",
        },
        headers=api.auth(roles=["sales"], subject="u-7"),
    )
    assert someone_else.status_code == 201, someone_else.text

    async def overdue_of(assignee: str) -> list[str]:
        response = await api.client.get(
            "/api/v1/tasks",
            params={"assignee": assignee, "status": "open", "due_before": now.isoformat()},
            headers=api.auth(),
        )
        assert response.status_code == 200, response.text
        return [t["id"] for t in response.json()["items"]]

    assert await overdue_of("u-7") == [ids["overdue"]]
    done = await api.client.post(
        f"/api/v1/tasks/{ids['overdue']}/complete",
        json={"note": "reached her"},
        headers=api.auth(roles=["sales"], subject="u-7"),
    )
    assert done.status_code == 200, done.text
    assert await overdue_of("u-7") == []
    late = await api.client.post(
        f"/api/v1/tasks/{ids['overdue']}/reschedule",
        json={"due_at": due["later"].isoformat()},
        headers=api.auth(),
    )
    assert late.status_code == 409, late.text
    moved = await api.client.post(
        f"/api/v1/tasks/{ids['later']}/reschedule",
        json={"due_at": (now - timedelta(hours=1)).isoformat()},
        headers=api.auth() | {"If-Match": '"1"'},
    )
    assert moved.status_code == 200, moved.text
    assert await overdue_of("u-7") == [ids["later"]]
    viewer = await api.client.post(
        "/api/v1/tasks",
        json={"customer_id": customer, "title": "x", "due_at": now.isoformat()},
        headers=api.auth(roles=["viewer"]),
    )
    assert viewer.status_code == 403


async def test_a_person_known_by_an_email_subject_owns_and_lists_their_tasks(api: Api) -> None:
    # Most identity providers (and `crm token`) name users by e-mail address.
    customer = await api.register()
    due = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    mine = await api.client.post(
        "/api/v1/tasks",
        json={"customer_id": customer, "title": "call back", "due_at": due},
        headers=api.auth(roles=["sales"], subject="li.na+crm@example.com"),
    )
    handed = await api.client.post(
        "/api/v1/tasks",
        json={"customer_id": customer, "title": "x", "due_at": due, "assignee_id": "admin@demo"},
        headers=api.auth(roles=["sales"], subject="li.na+crm@example.com"),
    )
    listed = await api.client.get(
        "/api/v1/tasks", params={"assignee": "li.na+crm@example.com"}, headers=api.auth()
    )
    theirs = await api.client.get(
        "/api/v1/tasks", params={"assignee": "admin@demo"}, headers=api.auth()
    )
    not_a_person = await api.client.get(
        "/api/v1/tasks", params={"assignee": "a b"}, headers=api.auth()
    )

    assert mine.status_code == 201 and handed.status_code == 201, handed.text
    assert [t["id"] for t in listed.json()["items"]] == [mine.json()["id"]]
    assert [t["id"] for t in theirs.json()["items"]] == [handed.json()["id"]]
    assert not_a_person.status_code == 422


async def test_a_task_about_a_deal_is_the_deals_customers(api: Api) -> None:
    customer = await api.register()
    deal = await api.client.post(
        "/api/v1/deals",
        json={"customer_id": customer, "title": "x", "amount": 1, "currency": "CNY"},
        headers=api.auth(),
    )
    assert deal.status_code == 201, deal.text
    body: dict[str, Any] = {"title": "send the quote", "due_at": datetime.now(UTC).isoformat()}
    created = await api.client.post(
        "/api/v1/tasks", json=body | {"deal_id": deal.json()["id"]}, headers=api.auth()
    )
    assert created.status_code == 201, created.text
    task = await api.client.get(f"/api/v1/tasks/{created.json()['id']}", headers=api.auth())
    assert task.json()["customer_id"] == customer
    for field in ("deal_id", "lead_id", "customer_id"):
        unknown = await api.client.post(
            "/api/v1/tasks", json=body | {field: "nothing-here"}, headers=api.auth()
        )
        assert unknown.status_code == 422, unknown.text
        assert unknown.json()["errors"][0]["field"] == field


async def test_a_contract_is_signed_renewed_and_terminated(api: Api) -> None:
    api.pipeline.clock = lambda: datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    customer = await api.register()
    body = {
        "customer_id": customer,
        "title": "annual supply",
        "value": 1200000,
        "currency": "CNY",
        "starts_on": "2026-01-01",
        "ends_on": "2026-12-31",
        "auto_renew": True,
    }
    backwards = await api.client.post(
        "/api/v1/contracts", json=body | {"ends_on": "2025-12-31"}, headers=api.auth()
    )
    assert backwards.status_code == 422 and backwards.json()["errors"][0]["field"] == "ends_on"
    signed = await api.client.post("/api/v1/contracts", json=body, headers=api.auth())
    assert signed.status_code == 201, signed.text
    contract = signed.json()["id"]

    renewed = await api.client.post(
        f"/api/v1/contracts/{contract}/renew",
        json={"ends_on": "2027-12-31", "value": 1300000},
        headers=api.auth() | {"If-Match": '"1"'},
    )
    assert renewed.status_code == 200, renewed.text
    ended = await api.client.post(
        f"/api/v1/contracts/{contract}/terminate",
        json={"reason": "moved to a competitor", "terminated_on": "2026-06-30"},
        headers=api.auth(),
    )
    assert ended.status_code == 200, ended.text
    again = await api.client.post(
        f"/api/v1/contracts/{contract}/renew", json={"ends_on": "2028-12-31"}, headers=api.auth()
    )
    assert again.status_code == 409, again.text

    listed = await api.client.get(f"/api/v1/customers/{customer}/contracts", headers=api.auth())
    (item,) = listed.json()["items"]
    assert (item["value"], item["ends_on"], item["terminated_on"]) == (
        1300000,
        "2027-12-31",
        "2026-06-30",
    )
    assert item["status"] == "terminated"
