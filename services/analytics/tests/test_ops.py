"""The analytics service's ops report: its outbox and its projection over five topics,
rebuildable by generation (PostgreSQL and SQLite + broker)."""

from __future__ import annotations

from libs.events.kafka import service_topic
from services.analytics.tests.conftest import Api
from testing.problems import problem_of

OPS = "/api/v1/ops/analytics"


async def test_the_projection_is_watched_over_every_topic_it_reads_and_is_rebuildable(
    api: Api,
) -> None:
    response = await api.client.get(OPS, headers=api.auth(roles=("admin",)))

    assert response.status_code == 200, response.text
    report = response.json()
    assert report["outbox"]["events"] >= 0
    (analytics,) = report["projections"]
    assert analytics["name"] == "analytics" and analytics["rebuildable"] is True
    assert analytics["generation"] == 1 and analytics["rebuild"] is None
    sources = {"contacts", "pipeline", "tickets", "loyalty", "alerts"}
    assert {d["topic"] for d in analytics["dead_letters"]} == {service_topic(s) for s in sources}
    refused = await api.client.post(
        f"{OPS}/projections/analytics/rebuilds", headers=api.auth(roles=("manager",))
    )
    assert refused.status_code == 403
    assert "ops:rebuild" in problem_of(refused)["detail"]
