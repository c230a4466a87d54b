"""A ranking as of a past time is a job: asked for, scored by one worker on a read
connection, read a page at a time; the same key returns the same job (decision 0093)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import update

from services.alerts.handlers import past_rankings
from services.alerts.tests.conftest import Api, days_before
from services.alerts.tests.test_api import (
    complaints_and_a_key_contact_change,
    metric,
    order,
    registered,
)
from testing.consumers import Clock


async def ask(api: Api, tenant: str = "acme", key: str | None = None, **body: Any) -> Any:
    headers = api.auth(tenant) | ({"Idempotency-Key": key} if key else {})
    return await api.client.post("/api/v1/churn/rankings", json=body, headers=headers)


async def read_all(api: Api, location: str, limit: int = 2) -> tuple[Any, list[Any]]:
    items: list[Any] = []
    page = (await api.client.get(location, params={"limit": limit}, headers=api.auth())).json()
    first = page
    while True:
        items += page["items"]
        if page["next_cursor"] is None:
            return first, items
        page = (
            await api.client.get(
                location, params={"cursor": page["next_cursor"], "limit": limit}, headers=api.auth()
            )
        ).json()


async def given_customers(api: Api) -> None:
    await complaints_and_a_key_contact_change(api, "c-1")
    for n in (2, 3, 4):
        await api.publish("contacts", f"c-{n}", registered(f"c-{n}"))
    await api.publish("pipeline", "c-3", *[order("c-3", f"o{n}", n) for n in (200, 170, 140)])
    await api.caught_up()


async def test_a_past_ranking_is_a_job_whose_pages_match_the_scored_ranking(
    api: Api, clock: Clock
) -> None:
    await given_customers(api)
    then = days_before(1).isoformat()

    scored_before = await metric(api, 'crm_churn_past_rankings_total{outcome="done"}')
    asked = await ask(api, as_of=then)
    assert asked.status_code == 202, asked.text
    assert asked.json()["status"] == "queued"
    location = asked.headers["Location"]
    assert await past_rankings.score_queued(api.app.state.alerts.engine, clock) == 1
    scored = await metric(api, 'crm_churn_past_rankings_total{outcome="done"}')
    assert scored == scored_before + 1
    job, items = await read_all(api, location)

    scored = await api.risks(as_of=then, limit=500)
    assert job["status"] == "done" and job["ranked"] == 4
    assert [(i["customer_id"], i["score"], i["reasons"]) for i in items] == [
        (i["customer_id"], i["score"], i["reasons"]) for i in scored["items"]
    ]
    assert [i["position"] for i in items] == [1, 2, 3, 4]


async def test_the_same_key_returns_the_same_job(api: Api, clock: Clock) -> None:
    await given_customers(api)
    then = days_before(30).isoformat()

    first = await ask(api, key="monthly-review", as_of=then)
    again = await ask(api, key="monthly-review", as_of=then)
    elsewhere = await ask(api, "other", key="monthly-review", as_of=then)

    assert (first.status_code, again.status_code, elsewhere.status_code) == (202, 200, 202)
    assert again.json()["ranking_id"] == first.json()["ranking_id"]
    assert elsewhere.json()["ranking_id"] != first.json()["ranking_id"]
    assert await past_rankings.score_queued(api.app.state.alerts.engine, clock) == 2


async def test_a_job_left_running_is_scored_after_a_restart(api: Api, clock: Clock) -> None:
    await given_customers(api)
    asked = (await ask(api, as_of=days_before(1).isoformat())).json()
    engine = api.app.state.alerts.engine
    async with engine.begin() as conn:  # its worker stopped while scoring
        await conn.execute(update(past_rankings.rankings).values(status="running"))
    assert await past_rankings.score_queued(engine, clock) == 0

    await past_rankings.requeue_running(engine)

    assert await past_rankings.score_queued(engine, clock) == 1
    job = await api.client.get(f"/api/v1/churn/rankings/{asked['ranking_id']}", headers=api.auth())
    assert job.json()["status"] == "done"


async def test_bad_requests_name_the_field_and_others_rankings_are_not_found(
    api: Api, clock: Clock
) -> None:
    future = await ask(api, as_of=(clock.now + timedelta(days=1)).isoformat())
    naive = await ask(api, as_of="2026-01-01T00:00:00")
    asked = (await ask(api, as_of=days_before(1).isoformat())).json()
    path = f"/api/v1/churn/rankings/{asked['ranking_id']}"

    assert future.status_code == 422 and "as_of" in future.text
    assert naive.status_code == 422 and "as_of" in naive.text
    assert (await api.client.get(path, headers=api.auth("other"))).status_code == 404
    unknown = f"/api/v1/churn/rankings/{'0' * 8}-0000-0000-0000-{'0' * 12}"
    assert (await api.client.get(unknown, headers=api.auth())).status_code == 404
    bad_cursor = await api.client.get(path, params={"cursor": "bm9wZQ"}, headers=api.auth())
    assert bad_cursor.status_code == 422 and "cursor" in bad_cursor.text


async def test_a_ranking_with_a_horizon_is_the_backtest_as_a_job(api: Api, clock: Clock) -> None:
    await given_customers(api)
    cutoff = days_before(120)
    body = {"cutoff": cutoff.isoformat(), "horizon_days": 90}

    asked = await ask(api, as_of=cutoff.isoformat(), horizon_days=90)
    assert asked.status_code == 202, asked.text
    await past_rankings.score_queued(api.app.state.alerts.engine, clock)
    job = (await api.client.get(asked.headers["Location"], headers=api.auth())).json()
    answered = await api.client.post("/api/v1/churn/backtests", json=body, headers=api.auth())

    assert job["status"] == "done" and job["horizon_days"] == 90
    assert job["backtest"] == answered.json()
    unknown = await ask(api, as_of=days_before(30).isoformat(), horizon_days=90)
    assert unknown.status_code == 422 and "horizon_days" in unknown.text
