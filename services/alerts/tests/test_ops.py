"""The alerts service's ops report: its outbox and both consumers it runs, the churn
projector and the webhook dispatcher (PostgreSQL + broker). Each acts on what it reads
(alerts appended, webhooks sent), so neither is rebuilt."""

from __future__ import annotations

from services.alerts.tests.conftest import Api
from testing.problems import problem_of

OPS = "/api/v1/ops/alerts"


async def test_both_consumers_are_watched_and_neither_is_rebuilt(api: Api) -> None:
    response = await api.client.get(OPS, headers=api.auth(roles=("manager",)))

    assert response.status_code == 200, response.text
    report = response.json()
    assert report["service"] == "alerts"
    assert report["outbox"]["events"] >= 0
    watched = {p["name"]: p for p in report["projections"]}
    assert set(watched) == {"alerts_churn_facts", "alerts_webhook_dispatch"}
    assert not any(p["rebuildable"] for p in watched.values())
    assert all(d["consumer"].endswith(".g1") for d in watched["alerts_churn_facts"]["dead_letters"])
    operator = api.auth(roles=("operator",))
    for name in watched:
        refused = await api.client.post(f"{OPS}/projections/{name}/rebuilds", headers=operator)
        assert refused.status_code == 409
        assert problem_of(refused)["code"] == "not_rebuildable"
    # Another tenant's admin reads the same counts: they name no tenant's data.
    other = await api.client.get(OPS, headers=api.auth(tenant="globex", roles=("admin",)))
    assert other.status_code == 200
    assert {p["name"] for p in other.json()["projections"]} == set(watched)
