"""The API gateway: the platform's one front door (``crm serve gateway``, port 8000)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from libs.platform.app import CORRELATION_ID_HEADER, REQUEST_ID_HEADER, create_service_app
from services.gateway.api import VERSION, routers
from services.gateway.console import mount_console
from services.gateway.open_resources import GatewayRuntime
from services.gateway.routes import RoutingTable
from services.gateway.settings import Settings

log = structlog.get_logger("crm.gateway")

# The platform-wide versions of these replace the per-service ones of create_service_app.
_REPLACED_PATHS = frozenset({"/healthz", "/readyz", "/openapi.json"})


def create_app(settings: Settings, routing: RoutingTable) -> FastAPI:
    """The gateway for ``routing`` (every service's declared routes); the composition
    root (``services.bootstrap.create_gateway``) calls it with the platform's table."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = await GatewayRuntime.start(settings, routing)
        if not runtime.authenticator.signs_tokens:
            log.warning(
                "api_keys_disabled",
                reason="no shared-secret algorithm to sign forwarded tokens with",
                hint="set JWT_SECRET and add HS256 to JWT_ALGORITHMS (gateway and services)",
            )
        app.state.gateway = runtime
        try:
            yield
        finally:
            await runtime.stop()

    app = create_service_app(
        title="CRM platform API",
        version=VERSION,
        settings=settings,
        routers=[],
        lifespan=lifespan,
    )
    app.description = (
        "Every service of the customer-lifecycle platform behind one gateway. "
        "Authenticate with a bearer JWT or an API key (X-API-Key)."
    )
    app.router.routes[:] = [
        route for route in app.router.routes if getattr(route, "path", None) not in _REPLACED_PATHS
    ]
    mount_console(app)  # before the forwarding, which takes every other /api path
    for router in routers:
        app.include_router(router)

    if settings.cors_allow_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_allow_origins),
            allow_methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=[
                "Authorization",
                "Content-Type",
                "If-Match",
                "X-API-Key",
                REQUEST_ID_HEADER,
                CORRELATION_ID_HEADER,
            ],
            expose_headers=[
                "ETag",
                "Location",
                "Retry-After",
                REQUEST_ID_HEADER,
                CORRELATION_ID_HEADER,
            ],
        )
    return app
