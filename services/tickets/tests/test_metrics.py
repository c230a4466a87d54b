"""/metrics: open tickets by priority, breaches (see test_breaches), time to first response."""

from __future__ import annotations

import re
from datetime import timedelta

import httpx
from fastapi import FastAPI

from services.tickets.tests.conftest import Api, MovableClock


async def scrape(app: FastAPI) -> str:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        return (await c.get("/metrics")).text


def value(text: str, sample: str) -> float:
    found = re.search(rf"^{re.escape(sample)} (\S+)$", text, re.MULTILINE)
    assert found, f"{sample} not in /metrics"
    return float(found.group(1))


async def test_open_tickets_by_priority_and_business_time_to_first_response(
    api: Api, app: FastAPI, clock: MovableClock
) -> None:
    customer = await api.register()
    urgent = (await api.open(customer, priority="urgent"))["id"]
    await api.open(customer, priority="urgent")
    await api.open(customer, priority="low")
    before = value(await scrape(app), "crm_tickets_first_response_business_seconds_count")

    clock.advance(timedelta(minutes=20))
    await api.post(f"/api/v1/tickets/{urgent}/replies", {"body": "马上处理"})
    await api.post(f"/api/v1/tickets/{urgent}/status", {"status": "solved"})
    await app.state.scheduler.count_open()

    text = await scrape(app)
    assert value(text, 'crm_tickets_open{priority="urgent"}') == 1
    assert value(text, 'crm_tickets_open{priority="low"}') == 1
    assert value(text, 'crm_tickets_open{priority="high"}') == 0
    assert value(text, "crm_tickets_first_response_business_seconds_count") == before + 1
    assert value(text, 'crm_tickets_first_response_business_seconds_bucket{le="1800.0"}') >= 1
