"""Admission (decision 0102): a service serves at most so many requests at once, lets
so many more wait, and refuses the rest at once with 503 and Retry-After; probes are
never refused."""

from __future__ import annotations

import asyncio
import time

import httpx

from libs.platform.app import create_service_app
from libs.platform.routing import ServiceRouter
from libs.platform.settings import ServiceSettings

router = ServiceRouter()
release = asyncio.Event()
both_in = asyncio.Event()
started: list[int] = []


@router.get("/slow")
async def slow() -> dict[str, int]:
    started.append(1)
    if len(started) == 2:
        both_in.set()
    await release.wait()
    return {"served": len(started)}


class BusySettings(ServiceSettings):
    service_name = "admission-test"


def busy_app() -> httpx.AsyncClient:
    settings = BusySettings(max_requests_in_flight=2, max_requests_waiting=1)
    app = create_service_app(title="t", version="1", settings=settings, routers=[router])
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://svc")


async def test_past_its_capacity_a_service_refuses_at_once_and_serves_what_it_admitted() -> None:
    release.clear()
    both_in.clear()
    started.clear()
    async with busy_app() as client:
        admitted = [asyncio.create_task(client.get("/slow")) for _ in range(2)]
        await asyncio.wait_for(both_in.wait(), 5)
        queued = asyncio.create_task(client.get("/slow"))
        await asyncio.sleep(0.05)  # it takes the one place in the queue

        begun = time.perf_counter()
        refused = await client.get("/slow")
        refused_in = time.perf_counter() - begun
        alive = await client.get("/livez")
        metrics = (await client.get("/metrics")).text
        release.set()
        served = await asyncio.gather(*admitted, queued)
        after = await client.get("/slow")

    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "1"
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert "at capacity" in refused.json()["detail"]
    assert refused_in < 0.1  # refused at once: the queue was full
    assert len(started) == 4  # the refused one never reached the handler
    assert [r.status_code for r in served] == [200, 200, 200]  # the queued one too
    assert after.status_code == 200
    assert alive.status_code == 200
    assert 'crm_http_requests_shed_total{service="admission-test"}' in metrics
