"""One access-log line and one metric per request, its ids in and out, no leaked exception.

``RequestContextMiddleware`` wraps every service app (``create_service_app``): the
request's ids (``libs.platform.request_ids``) are adopted or made up and sent back,
the request is counted by its route template, and anything that escapes the
exception handlers is answered as a 500 problem with the request id on it.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import structlog
from prometheus_client import Counter, Histogram
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from libs.auth.dependencies import PRINCIPAL_STATE_KEY
from libs.events.tracing import exemplar
from libs.platform.problems import ProblemResponse, problem_body
from libs.platform.request_ids import (
    CORRELATION_ID_HEADER,
    REQUEST_ID_HEADER,
    correlation_scope,
    usable_id,
)
from libs.platform.tracing import name_request_span

# Set by the gateway on what it forwards: the request's access line is the gateway's
# (one per request, at the edge), so the service writes its own at debug level only.
ACCESS_LOGGED_HEADER = "X-Access-Logged-By"

log = structlog.get_logger("crm.http")

HTTP_REQUESTS = Counter(
    "crm_http_requests_total",
    "HTTP requests answered, by route template and status",
    ["service", "method", "route", "status"],
)
HTTP_SECONDS = Histogram(
    "crm_http_request_duration_seconds",
    "Time to answer an HTTP request",
    ["service", "method", "route"],
)


class RequestContextMiddleware:
    """Ids in, ids out, one log line and one metric per request, no leaked exception.

    A plain ASGI middleware (not ``BaseHTTPMiddleware``) so the context variables
    it sets are the ones the endpoint sees, and so it sits outside FastAPI's
    exception handlers: whatever escapes them is turned into a 500 here, with the
    request id on it, instead of a bare text response from Starlette.
    """

    def __init__(self, app: ASGIApp, *, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        headers = Headers(scope=scope)
        request_id = usable_id(headers.get(REQUEST_ID_HEADER)) or uuid.uuid4().hex
        correlation_id = usable_id(headers.get(CORRELATION_ID_HEADER)) or request_id
        status_code: int | None = None  # None: no response of ours reached the client
        response_started = False
        sending_failed = False
        started_at = time.perf_counter()

        async def send_with_ids(message: Message) -> None:
            nonlocal status_code, response_started, sending_failed
            if message["type"] == "http.response.start":
                response_started = True
                message["headers"] = list(message.get("headers", []))
                response_headers = MutableHeaders(scope=message)
                response_headers[REQUEST_ID_HEADER] = request_id
                response_headers[CORRELATION_ID_HEADER] = correlation_id
                # Now, while the request's span is open: it ends with the response body.
                name_request_span(scope["method"], _route_template(scope))
            try:
                await send(message)
            except BaseException:
                sending_failed = True
                raise
            if message["type"] == "http.response.start":
                status_code = message["status"]

        with correlation_scope(correlation_id, request_id=request_id):
            try:
                await self.app(scope, receive, send_with_ids)
            except StarletteHTTPException as refused:
                # Raised by the outer body-size limiter, which answers it itself (413).
                status_code = refused.status_code
                raise
            except Exception:
                if sending_failed:
                    # The client went away, or an outer layer (the body-size limit)
                    # answered instead of us: not a bug here, and theirs to handle.
                    raise
                log.exception("request_failed", method=scope["method"], path=scope["path"])
                if response_started:
                    raise  # too late for a clean 500; let the server close the stream
                body = problem_body(
                    500, "internal error", instance=scope["path"], request_id=request_id
                )
                await ProblemResponse(body, status_code=500)(scope, receive, send_with_ids)
            finally:
                self._record(scope, status_code, time.perf_counter() - started_at)

    def _record(self, scope: Scope, status_code: int | None, seconds: float) -> None:
        route = _route_template(scope)
        method = scope["method"]
        status_label = "unsent" if status_code is None else str(status_code)
        HTTP_REQUESTS.labels(self.service, method, route, status_label).inc()
        HTTP_SECONDS.labels(self.service, method, route).observe(seconds, exemplar())
        principal = scope.get("state", {}).get(PRINCIPAL_STATE_KEY)
        fields: dict[str, Any] = {
            "method": method,
            "path": scope["path"],
            "route": route,
            "status": status_code,
            "duration_ms": round(seconds * 1000, 2),
        }
        if principal is not None:
            fields["tenant_id"] = principal.tenant_id
            fields["subject"] = principal.subject
        # Scrapes and probes every few seconds would drown the real traffic.
        if route in _PROBES or _logged_at_the_edge(scope):
            log.debug("request", **fields)
        elif status_code is None or status_code >= 500:
            log.error("request", **fields)
        else:
            log.info("request", **fields)


_PROBES = frozenset({"/metrics", "/healthz", "/livez", "/readyz"})


def _logged_at_the_edge(scope: Scope) -> bool:
    return ACCESS_LOGGED_HEADER.lower().encode() in (name for name, _ in scope["headers"])


ROUTE_TEMPLATE_KEY = "crm.route_template"


def _route_template(scope: Scope) -> str:
    """The route template ("/customers/{customer_id}"), never the raw path: raw
    paths would give every customer its own time series. A catch-all route (the
    gateway's relay) names the template it matched in ``scope[ROUTE_TEMPLATE_KEY]``."""
    named = scope.get(ROUTE_TEMPLATE_KEY)
    if isinstance(named, str):
        return named
    route = getattr(scope.get("route"), "path", None)
    if isinstance(route, str):
        return route
    # FastAPI records the route only for its own routes, not for the metrics app.
    if scope["path"] in ("/metrics", "/metrics/"):
        return "/metrics"
    return "unmatched"
