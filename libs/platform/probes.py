"""The probes every service answers: ``/livez``, ``/readyz``, ``/healthz``, ``/metrics``.

``/livez``: the process answers (restart it only when this fails). ``/readyz``: its
database answers and its consumers consume (send it traffic only then).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from libs.events.metrics import metrics_app
from libs.platform.db import create_engine
from libs.platform.settings import ServiceSettings


class _MetricsEndpoint:
    """The Prometheus ASGI app as an exact route, so ``/metrics`` needs no redirect."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await metrics_app(scope, receive, send)


def install_probes(app: FastAPI, settings: ServiceSettings, version: str) -> None:
    """The probe routes of ``app``, left out of its OpenAPI document."""
    @app.get("/livez", include_in_schema=False)
    async def livez() -> dict[str, str]:
        """The process runs and answers: restart it only when this fails."""
        return {"status": "ok", "service": settings.service_name}

    @app.get("/readyz", include_in_schema=False)
    async def readyz(request: Request) -> JSONResponse:
        """200 once its database answers and every consumer it runs has joined its
        group and is not stalled; send it traffic (and say "ready") only then."""
        database = await database_readiness(request.app, settings.database_url)
        consumers_ready, consumer_report = request.app.state.consumers.report()
        ready = database["status"] == "up" and consumers_ready
        body = {
            "status": "ready" if ready else "not_ready",
            "service": settings.service_name,
            "database": database,
            "consumers": consumer_report,
        }
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": settings.service_name, "version": version}

    app.router.routes.append(
        Route("/metrics", _MetricsEndpoint(), methods=["GET"], include_in_schema=False)
    )
    app.mount("/metrics", metrics_app)


async def database_readiness(app: FastAPI, url: str, timeout: float = 2.0) -> dict[str, Any]:
    """Whether the service's database answers a ``SELECT 1`` within ``timeout``.

    Its own one-connection engine: a pool exhausted by requests must not make the
    probe wait, and the probe must not take a connection a request needs.
    """
    engine = getattr(app.state, "readiness_engine", None)
    if engine is None:
        engine = app.state.readiness_engine = create_engine(url, pool_size=1)
    started_at = time.perf_counter()
    try:
        async with asyncio.timeout(timeout), engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text("SELECT 1"))
    except Exception as failed:  # any failure means the same thing here: not ready
        return {"status": "down", "error": type(failed).__name__}
    return {"status": "up", "latency_ms": round((time.perf_counter() - started_at) * 1000, 2)}
