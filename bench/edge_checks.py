"""What the platform's edge check costs a request (``ServiceRouter``, decision 0086).

    .venv/bin/python -m bench.edge_checks            # 7 rounds of 2,000 requests each way

One operation declared twice, on FastAPI's ``APIRouter`` and on ``ServiceRouter`` (the
same operation with the NUL check as its last dependency), each in its own app built by
``create_service_app``: a bearer token checked against the role matrix, a 300-byte JSON
body validated by pydantic, a path and a query parameter. Requests go in-process
(httpx's ASGI transport), so the figure is the service's own CPU per request with no
network or database: the worst case for the check's share. Rounds alternate between
the two apps; medians of this process's CPU time per request, and their ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Annotated

import httpx
from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from libs.auth import Principal, issue_token, require
from libs.platform.app import create_service_app
from libs.platform.routing import ServiceRouter
from libs.platform.settings import ServiceSettings


class EdgeSettings(ServiceSettings):
    service_name = "edge-bench"


class Interaction(BaseModel):
    channel: str = Field(max_length=20)
    summary: str = Field(max_length=2000)
    tags: list[str] = Field(default_factory=list, max_length=10)


def router_of(router: APIRouter) -> APIRouter:
    @router.post("/api/v1/customers/{customer_id}/interactions", status_code=201)
    async def log_interaction(
        customer_id: str,
        body: Interaction,
        principal: Annotated[Principal, Depends(require("interactions:write"))],
        source: str = "web",
    ) -> dict[str, str]:
        return {"customer_id": customer_id, "tenant": principal.tenant_id, "source": source}

    return router


async def cpu_per_request(client: httpx.AsyncClient, requests: int, headers: dict[str, str]
                          ) -> float:
    body = {"channel": "phone", "summary": "回访：客户对交付时间满意。" * 12, "tags": ["vip"]}
    started = time.process_time()
    for i in range(requests):
        response = await client.post(
            f"/api/v1/customers/c-{i:06d}/interactions", params={"source": "app"},
            json=body, headers=headers,
        )
        assert response.status_code == 201, response.text
    return (time.process_time() - started) / requests


async def main(rounds: int, requests: int) -> None:
    settings = EdgeSettings(log_level="WARNING")
    token = issue_token(settings.auth(), "rep-1", "acme", ["sales"])
    headers = {"Authorization": f"Bearer {token}"}
    apps = {
        "APIRouter": create_service_app(title="edge", version="1", settings=settings,
                                        routers=[router_of(APIRouter())]),
        "ServiceRouter": create_service_app(title="edge", version="1", settings=settings,
                                            routers=[router_of(ServiceRouter())]),
    }
    clients = {
        name: httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://edge")
        for name, app in apps.items()
    }
    for client in clients.values():  # warm up
        await cpu_per_request(client, 200, headers)
    samples: dict[str, list[float]] = {name: [] for name in clients}
    for _ in range(rounds):
        for name, client in clients.items():
            samples[name].append(await cpu_per_request(client, requests, headers))
    for client in clients.values():
        await client.aclose()
    medians = {name: statistics.median(values) for name, values in samples.items()}
    for name, value in medians.items():
        spread = ", ".join(f"{v * 1e6:.0f}" for v in samples[name])
        print(f"{name:<14} median {value * 1e6:.0f} µs CPU per request  (rounds: {spread})")
    ratio = medians["ServiceRouter"] / medians["APIRouter"]
    print(f"ServiceRouter / APIRouter = {ratio:.3f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    asyncio.run(main(args.rounds, args.requests))
