"""The gateway's health and readiness, each service behind it reported."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
from fastapi import Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from libs.platform.routing import ServiceRouter
from services.gateway.api.conventions import VERSION, runtime_of
from services.gateway.open_resources import GatewayRuntime

router = ServiceRouter()


@router.get("/healthz", include_in_schema=False)
async def healthz(request: Request) -> JSONResponse:
    """200 while the gateway itself works, whatever the services' state (each is reported);
    503 only when its own database is unreachable. A load balancer that took the gateway
    out because one service is down would turn a partial outage into a total one."""
    runtime = runtime_of(request)
    timeout = runtime.settings.upstream_probe_timeout_seconds
    database, *upstreams = await asyncio.gather(
        _database_health(runtime, timeout),
        *(
            _upstream_health(runtime.client, url, timeout)
            for url in runtime.settings.upstream_urls().values()
        ),
    )
    upstream_report = dict(zip(runtime.settings.upstream_urls(), upstreams, strict=True))
    healthy = database["status"] == "up"
    all_up = all(report["status"] == "up" for report in upstreams)
    body = {
        "status": "ok" if healthy and all_up else ("degraded" if healthy else "failing"),
        "service": runtime.settings.service_name,
        "version": VERSION,
        "database": database,
        "upstreams": upstream_report,
    }
    return JSONResponse(body, status_code=200 if healthy else 503)


@router.get("/readyz", include_in_schema=False)
async def readyz(request: Request) -> JSONResponse:
    """200 once the gateway's database answers and every service behind it has been
    ready once since the gateway started; a service down later is its own outage, not
    the gateway's (decision 0100). Each service's readiness is reported."""
    runtime = runtime_of(request)
    timeout = runtime.settings.upstream_probe_timeout_seconds
    urls = runtime.settings.upstream_urls()
    database, *upstreams = await asyncio.gather(
        _database_health(runtime, timeout),
        *(_upstream_health(runtime.client, url, timeout, probe="/readyz") for url in urls.values()),
    )
    reports = dict(zip(urls, upstreams, strict=True))
    waiting = sorted(name for name, report in reports.items() if report["status"] != "ready")
    runtime.upstreams_ready_once = runtime.upstreams_ready_once or not waiting
    ready = database["status"] == "up" and runtime.upstreams_ready_once
    body: dict[str, Any] = {"status": "ready" if ready else "not_ready"}
    body |= {"service": runtime.settings.service_name}
    body |= {"database": database, "upstreams": reports}
    if not runtime.upstreams_ready_once:
        body["waiting_for"] = waiting
    return JSONResponse(body, status_code=200 if ready else 503)


async def _database_health(runtime: GatewayRuntime, timeout: float) -> dict[str, Any]:
    started_at = time.perf_counter()
    try:
        async with asyncio.timeout(timeout), runtime.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as failed:  # any failure means the same thing here: down
        return {"status": "down", "detail": type(failed).__name__}
    return {"status": "up", "latency_ms": _ms_since(started_at)}


async def _upstream_health(
    client: httpx.AsyncClient, url: str, timeout: float, *, probe: str = "/healthz"
) -> dict[str, Any]:
    started_at = time.perf_counter()
    report: dict[str, Any] = {"url": url}
    try:
        response = await client.get(f"{url}{probe}", timeout=timeout)
    except httpx.HTTPError as failed:
        return {**report, "status": "down", "detail": type(failed).__name__}
    report["latency_ms"] = _ms_since(started_at)
    if response.status_code != 200:
        return {**report, "status": "down", "detail": f"status {response.status_code}"}
    return {**report, "status": "up" if probe == "/healthz" else "ready"}


def _ms_since(started_at: float) -> float:
    return round((time.perf_counter() - started_at) * 1000, 2)
