"""The FastAPI application every service starts from.

``create_service_app`` gives each service the same outside: ``/livez`` (the
process answers), ``/readyz`` (its database answers and its consumers consume),
``/healthz``, ``/metrics`` (``libs.platform.probes``), bearer-token verification,
request and correlation ids, one access-log line per request
(``libs.platform.request_context``), and one error format, RFC 9457 problem details
(``libs.platform.problems``), published on every operation of its OpenAPI:

- 401/403 from ``libs.auth``, 404/405 from routing: the status and its ``detail``;
- a request that fails validation, or an ``Unprocessable`` domain error:
  422 with ``errors: [{"field": "email", "reason": "..."}]``;
- any other ``DomainError``: its status, its ``detail`` and its extra members
  (``libs.platform.problem_handlers``);
- a body past the size limit: 413 (``libs.platform.body_limit``);
- anything unexpected: 500 ``internal error`` with the ``request_id``, logged
  with its traceback. A 500 is always our bug: clients cannot cause one.

What services import from here is re-exported below, from the module that holds it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import structlog
from fastapi import APIRouter, FastAPI
from starlette.types import Lifespan

from libs.auth.dependencies import bind_token_verifier
from libs.auth.tokens import TokenVerifier
from libs.events.readiness import ConsumerRegistry, collecting
from libs.platform.admission import AdmissionLimit
from libs.platform.body_limit import ServiceApp
from libs.platform.if_match import etag_for, if_match_version, parse_if_match
from libs.platform.offline_docs import DOCS_ASSETS_PATH, install_offline_docs
from libs.platform.probes import database_readiness, install_probes
from libs.platform.problem_handlers import install_problem_handlers
from libs.platform.request_context import (
    ACCESS_LOGGED_HEADER,
    ROUTE_TEMPLATE_KEY,
    RequestContextMiddleware,
)
from libs.platform.request_ids import (
    CORRELATION_ID_HEADER,
    REQUEST_ID_HEADER,
    correlation_scope,
    current_correlation_id,
    current_request_id,
)
from libs.platform.settings import ServiceSettings
from libs.platform.structured_logs import configure_logging
from libs.platform.tracing import configure_tracing

__all__ = [
    "ACCESS_LOGGED_HEADER",
    "CORRELATION_ID_HEADER",
    "DOCS_ASSETS_PATH",
    "REQUEST_ID_HEADER",
    "ROUTE_TEMPLATE_KEY",
    "configure_logging",
    "correlation_scope",
    "create_service_app",
    "current_correlation_id",
    "current_request_id",
    "database_readiness",
    "etag_for",
    "if_match_version",
    "install_offline_docs",
    "parse_if_match",
]

log = structlog.get_logger("crm.http")


def create_service_app(
    *,
    title: str,
    version: str,
    settings: ServiceSettings,
    routers: Sequence[APIRouter],
    lifespan: Lifespan[FastAPI] | None = None,
) -> FastAPI:
    configure_logging(settings.log_level)
    configure_tracing(settings.service_name)
    auth = settings.auth()
    if auth.uses_development_secret:
        log.warning(
            "auth_uses_development_secret",
            service=settings.service_name,
            hint="set JWT_SECRET, or JWT_PUBLIC_KEY / JWKS_URL in production",
        )

    consumers = ConsumerRegistry()

    @asynccontextmanager
    async def lifespan_collecting_consumers(app: FastAPI) -> AsyncIterator[None]:
        # Consumers started from the lifespan (and the tasks it creates) register here.
        with collecting(consumers):
            try:
                if lifespan is None:
                    yield
                else:
                    async with lifespan(app):
                        yield
            finally:
                engine = getattr(app.state, "readiness_engine", None)
                if engine is not None:
                    await engine.dispose()

    app = ServiceApp(
        title=title,
        version=version,
        lifespan=lifespan_collecting_consumers,
        max_body_size=settings.max_request_body_bytes,
        docs_url=None,
        redoc_url=None,
    )
    install_offline_docs(app)
    app.state.settings = settings
    app.state.consumers = consumers
    bind_token_verifier(app, TokenVerifier(auth))

    install_problem_handlers(app)
    app.add_middleware(RequestContextMiddleware, service=settings.service_name)
    # Outermost of ours: a request refused at capacity costs as little as it can.
    app.add_middleware(
        AdmissionLimit,
        service=settings.service_name,
        limit=settings.max_requests_in_flight,
        queue=settings.max_requests_waiting,
    )
    install_probes(app, settings, version)

    for router in routers:
        app.include_router(router)
    return app
