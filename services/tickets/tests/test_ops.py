"""The tickets service's ops report and a rebuild of its known-customers projection
started over HTTP (PostgreSQL + broker, contacts publishing the customers)."""

from __future__ import annotations

from typing import Any

from services.tickets.tests.conftest import Api, eventually
from testing.problems import problem_of

OPS = "/api/v1/ops/tickets"
REBUILDS = f"{OPS}/projections/tickets_customers/rebuilds"


async def report(api: Api, role: str = "admin") -> dict[str, Any]:
    response = await api.client.get(OPS, headers=api.auth(roles=(role,)))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_the_operator_rebuilds_the_known_customers_and_a_second_start_is_a_conflict(
    api: Api,
) -> None:
    for i in range(3):
        await api.register(name=f"客户 {i}", email=f"k{i}@example.com")

    async def caught_up() -> bool:
        (known,) = (await report(api))["projections"]
        return bool(known["lag_events"] == 0 and known["dead_letters"])

    await eventually(caught_up, timeout=30)
    (before,) = (await report(api, "manager"))["projections"]
    assert before["name"] == "tickets_customers"
    assert before["generation"] == 1 and before["rebuildable"] is True
    assert {d["topic"] for d in before["dead_letters"]} == {"crm.contacts.events"}
    assert before["dead_letters"][0]["consumer"] == "tickets_customers.g1"
    operator = api.auth(roles=("operator",))
    # A tenant's admin does not rebuild what every tenant reads.
    assert (await api.client.post(REBUILDS, headers=api.auth(roles=("admin",)))).status_code == 403

    started = await api.client.post(REBUILDS, headers=operator)
    again = await api.client.post(REBUILDS, headers=operator)

    assert started.status_code == 202, started.text
    job = started.json()
    assert job["projection"] == "tickets_customers" and job["state"] == "running"
    assert started.headers["Location"] == f"{REBUILDS}/{job['id']}"
    assert again.status_code == 409
    conflict = problem_of(again)
    assert conflict["code"] == "rebuild_running" and conflict["rebuild_id"] == job["id"]

    async def activated() -> bool:
        followed = await api.client.get(started.headers["Location"], headers=operator)
        assert followed.status_code == 200, followed.text
        assert followed.json()["state"] in {"running", "activated"}, followed.json()
        return bool(followed.json()["state"] == "activated")

    await eventually(activated, timeout=60, every=0.2)
    done = (await api.client.get(started.headers["Location"], headers=operator)).json()
    assert done["generation"] == 2
    assert done["read"] == done["target"] >= 3
    (after,) = (await report(api))["projections"]
    assert after["generation"] == 2
    assert after["rebuild"]["id"] == job["id"]
    # What the rebuilt generation knows serves the tickets: a known customer's ticket opens.
    customer = await api.register(name="新客户", email="new@example.com")
    await api.open(customer)


async def test_a_manager_reads_but_does_not_rebuild_and_unknowns_are_not_found(api: Api) -> None:
    refused = await api.client.post(REBUILDS, headers=api.auth(roles=("manager",)))
    assert refused.status_code == 403
    assert "ops:rebuild" in problem_of(refused)["detail"]
    assert (await report(api, "manager"))["outbox"]["events"] >= 0
    for role in ("viewer", "support"):
        assert (await api.client.get(OPS, headers=api.auth(roles=(role,)))).status_code == 403
    operator = api.auth(roles=("operator",))
    unknown = await api.client.post(f"{OPS}/projections/nope/rebuilds", headers=operator)
    assert unknown.status_code == 404
    assert problem_of(unknown)["projection"] == "nope"
    no_job = await api.client.get(f"{REBUILDS}/nope", headers=operator)
    assert no_job.status_code == 404
    assert problem_of(no_job)["rebuild_id"] == "nope"
