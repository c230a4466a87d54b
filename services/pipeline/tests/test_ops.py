"""The pipeline's ops report: its outbox and the two consumers it runs (PostgreSQL +
broker). Both react to events by writing, so neither is rebuilt."""

from __future__ import annotations

from typing import Any

from services.pipeline.tests.conftest import Api, eventually
from testing.problems import problem_of

OPS = "/api/v1/ops/pipeline"


async def report(api: Api) -> dict[str, Any]:
    response = await api.client.get(OPS, headers=api.auth(roles=("manager",)))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_the_report_shows_the_outbox_and_each_consumer_s_lag_and_dead_letters(
    api: Api,
) -> None:
    customer = await api.register(email="wf@example.com")
    await api.place(customer)

    async def settled() -> bool:
        now = await report(api)
        return bool(
            now["outbox"]["events"] == 0 and all(p["lag_events"] == 0 for p in now["projections"])
        )

    await eventually(settled, timeout=30)
    now = await report(api)
    assert now["service"] == "pipeline"
    watched = {p["name"]: p for p in now["projections"]}
    assert set(watched) == {"pipeline_customers", "pipeline_follow_ups"}
    customers = watched["pipeline_customers"]
    assert customers["stalled"] is False and customers["unmeasured"] is None
    assert [(d["topic"], d["dlq_topic"], d["messages"]) for d in customers["dead_letters"]] == [
        ("crm.contacts.events", "crm.contacts.events.dlq", 0)
    ]
    assert not any(p["rebuildable"] for p in watched.values())


async def test_a_consumer_that_reacts_by_writing_is_not_rebuilt(api: Api) -> None:
    response = await api.client.post(
        f"{OPS}/projections/pipeline_follow_ups/rebuilds", headers=api.auth(roles=("operator",))
    )
    assert response.status_code == 409
    refused = problem_of(response)
    assert refused["code"] == "not_rebuildable"
    assert refused["projection"] == "pipeline_follow_ups"
