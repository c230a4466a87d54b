"""Service statistics over a period, in business hours, from real tickets and answers."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi import FastAPI

from services.tickets.settings import Settings
from services.tickets.tests.conftest import Api, MovableClock
from services.tickets.tests.test_api import STANDARD_POLICY


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # The test moves the clock and runs the breach scheduler itself: the background one
    # would record the breach first, under load, and the test's own tick find none.
    return settings.model_copy(update={"run_sla_scheduler": False})


async def test_service_stats_summarise_the_period(
    api: Api, app: FastAPI, clock: MovableClock
) -> None:
    assert (await api.put("/api/v1/sla-policies/default", STANDARD_POLICY)).status_code == 200
    customer = await api.register()
    quick = (await api.open(customer))["id"]
    slow = (await api.open(customer, priority="urgent"))["id"]
    await api.open(customer, category="complaint")

    clock.advance(timedelta(minutes=30))
    await api.post(f"/api/v1/tickets/{quick}/replies", {"body": "在处理"})
    assert await app.state.scheduler.tick() == 1  # the urgent one missed its 15 minutes
    clock.advance(timedelta(minutes=90))
    await api.post(f"/api/v1/tickets/{quick}/status", {"status": "solved"})
    clock.advance(timedelta(hours=2))
    await api.post(f"/api/v1/tickets/{slow}/replies", {"body": "抱歉久等"})
    await api.post(f"/api/v1/tickets/{slow}/status", {"status": "solved"})
    for ticket, score in [(quick, 5), (slow, 2)]:
        link = (await api.post(f"/api/v1/tickets/{ticket}/csat-survey", {})).json()["link"]
        assert (await api.client.post(f"{link}/answer", json={"score": score})).status_code == 201
    for score in (10, 6, 8):
        link = (await api.post(f"/api/v1/customers/{customer}/nps-survey", {})).json()["link"]
        await api.client.post(f"{link}/answer", json={"score": score})

    stats = (
        await api.get(
            "/api/v1/service-stats",
            **{"from": "2026-12-07T00:00:00Z", "to": "2026-12-08T00:00:00Z"},
        )
    ).json()

    assert (stats["tickets_opened"], stats["tickets_solved"]) == (3, 2)
    assert stats["median_first_response_business_hours"] == 2.25  # 0.5 and 4
    assert stats["median_resolution_business_hours"] == 3.0  # 2 and 4
    assert stats["sla_compliance"]["normal"]["percent_met"] == 100.0
    assert stats["sla_compliance"]["urgent"]["percent_met"] == 0.0
    assert stats["csat"] == {"answers": 2, "percent_satisfied": 50.0}
    assert stats["nps"] == {"answers": 3, "score": 0}
    assert stats["complaints_open"] == 1

    earlier = (
        await api.get(
            "/api/v1/service-stats",
            **{"from": "2026-12-01T00:00:00Z", "to": "2026-12-07T00:00:00Z"},
        )
    ).json()
    assert (earlier["tickets_opened"], earlier["csat"]["answers"]) == (0, 0)
    backwards = await api.get(
        "/api/v1/service-stats", **{"from": "2026-12-08T00:00:00Z", "to": "2026-12-07T00:00:00Z"}
    )
    assert backwards.status_code == 422
