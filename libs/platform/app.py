"""The FastAPI application every service starts from.

``create_service_app`` gives each service the same outside: ``/livez`` (the
process answers), ``/readyz`` (its database answers and its consumers consume),
``/healthz``, ``/metrics``, bearer-token verification, request and correlation ids, one
access-log line per request, and one error format, RFC 9457 problem details
(``libs.platform.problems``), published on every operation of its OpenAPI:

- 401/403 from ``libs.auth``, 404/405 from routing: the status and its ``detail``;
- a request that fails validation, or an ``Unprocessable`` domain error:
  422 with ``errors: [{"field": "email", "reason": "..."}]``;
- any other ``DomainError``: its status, its ``detail`` and its extra members;
- anything unexpected: 500 ``internal error`` with the ``request_id``, logged
  with its traceback. A 500 is always our bug: clients cannot cause one.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any

import fastapi_offline
import structlog
from fastapi import APIRouter, FastAPI, Header, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import Counter, Histogram
from sqlalchemy import text
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Route
from starlette.types import ASGIApp, Lifespan, Message, Receive, Scope, Send

from libs.auth.dependencies import PRINCIPAL_STATE_KEY, bind_token_verifier
from libs.auth.tokens import TokenVerifier
from libs.events.metrics import metrics_app
from libs.events.readiness import ConsumerRegistry, collecting
from libs.platform.db import create_engine
from libs.platform.errors import DomainError, FieldIssue, Unprocessable
from libs.platform.problems import (
    PROBLEM_MEDIA_TYPE,
    ProblemResponse,
    install_problem_openapi,
    problem_body,
    summarise,
    unparseable_body,
)
from libs.platform.settings import ServiceSettings

REQUEST_ID_HEADER = "X-Request-ID"
CORRELATION_ID_HEADER = "X-Correlation-ID"
# Set by the gateway on what it forwards: the request's access line is the gateway's
# (one per request, at the edge), so the service writes its own at debug level only.
ACCESS_LOGGED_HEADER = "X-Access-Logged-By"

log = structlog.get_logger("crm.http")

_request_id: ContextVar[str | None] = ContextVar("crm_request_id", default=None)
_correlation_id: ContextVar[str | None] = ContextVar("crm_correlation_id", default=None)

# Ids end up in log lines, headers and events: refuse anything that could forge
# a log line or a header, and anything long enough to bloat every event.
_USABLE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/+=@-]{0,127}")

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


# --- request and correlation ids ---------------------------------------------


def current_request_id() -> str | None:
    """The id of the HTTP request being handled, or None outside one."""
    return _request_id.get()


def current_correlation_id() -> str | None:
    """The correlation id to stamp on events this request causes, or None outside one."""
    return _correlation_id.get()


@contextmanager
def correlation_scope(correlation_id: str, *, request_id: str | None = None) -> Iterator[None]:
    """Make ``current_correlation_id()`` answer ``correlation_id`` inside the block.

    The middleware uses it per request; an event handler can use it to carry the
    causing event's correlation id into the events it appends.
    """
    correlation_token = _correlation_id.set(correlation_id)
    request_token = _request_id.set(request_id)
    try:
        with structlog.contextvars.bound_contextvars(
            correlation_id=correlation_id, request_id=request_id
        ):
            yield
    finally:
        _request_id.reset(request_token)
        _correlation_id.reset(correlation_token)


def _usable_id(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return value if _USABLE_ID.fullmatch(value) else None


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
        request_id = _usable_id(headers.get(REQUEST_ID_HEADER)) or uuid.uuid4().hex
        correlation_id = _usable_id(headers.get(CORRELATION_ID_HEADER)) or request_id
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
        HTTP_SECONDS.labels(self.service, method, route).observe(seconds)
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


# --- error mapping -------------------------------------------------------------

_LOCATIONS = frozenset({"body", "query", "path", "header", "cookie"})


def _field_name(location: Sequence[Any]) -> str:
    parts = [str(part) for part in location]
    if len(parts) > 1 and parts[0] in _LOCATIONS:
        parts = parts[1:]
    return ".".join(parts)


def _reason(error: Mapping[str, Any]) -> str:
    message = str(error.get("msg", "invalid value"))
    # pydantic prefixes a validator's own message; the caller only needs the message.
    return message.removeprefix("Value error, ")


def _problem(
    request: Request, body: dict[str, Any], headers: Mapping[str, str] | None = None
) -> ProblemResponse:
    body = {**body, "instance": request.url.path, "request_id": current_request_id()}
    return ProblemResponse(jsonable_encoder(body), status_code=body["status"], headers=headers)


async def _validation_failed(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    # Deliberately no "input": it would echo personal data (emails, phones) back.
    issues: list[FieldIssue] = []
    for error in exc.errors():
        field = "body" if error.get("type") == "json_invalid" else _field_name(error["loc"])
        issues.append({"field": field, "reason": _reason(error)})
    return _problem(request, problem_body(422, summarise(issues), errors=issues))


async def _domain_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    log.info("request_refused", error=type(exc).__name__, status=exc.status_code)
    return _problem(request, exc.body(), exc.headers)


_UNPARSEABLE_BODY = "There was an error parsing the body"  # FastAPI's, for any such body


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    """Routing's 404/405 and ``libs.auth``'s 401/403/503, in the same shape."""
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    max_bytes = getattr(request.app, "max_body_size", None)
    if exc.status_code == 413 and max_bytes is not None:
        # The body-size limit, noticed while reading a body without a declared length.
        return _problem(request, _too_large(max_bytes), exc.headers)
    if exc.status_code == 400 and detail == _UNPARSEABLE_BODY:
        # FastAPI's answer to a body its parser gave up on (not UTF-8, too deep): bad
        # input like malformed JSON, already a 422 naming the body: one status for all.
        issue: FieldIssue = {"field": "body", "reason": unparseable_body(exc.__cause__)}
        return _problem(request, problem_body(422, summarise([issue]), errors=[issue]))
    return _problem(request, problem_body(exc.status_code, detail), exc.headers)


def _too_large(max_bytes: int) -> dict[str, Any]:
    return problem_body(
        413, f"the request body is larger than {max_bytes} bytes", max_bytes=max_bytes
    )


class JsonTooLarge:
    """The body-size limit's 413 in the platform's JSON error shape.

    Starlette's limiter sits outside every middleware and handler of ours and
    answers in plain text (or, for a body without a declared length, with its own
    detail); this wraps the whole stack and rewrites exactly those answers. A 413
    with any other body (one a service behind the gateway gave) passes unchanged.
    """

    _LIMITER_BODIES = frozenset({b"Content Too Large", b'{"detail":"Content Too Large"}'})

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.body = json.dumps(_too_large(max_bytes)).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        held: Message | None = None
        held_body = b""

        async def send_json(message: Message) -> None:
            nonlocal held, held_body
            if message["type"] == "http.response.start" and message["status"] == 413:
                held = message  # tiny: wait for its body to know whose answer it is
                return
            if held is None or message["type"] != "http.response.body":
                await send(message)
                return
            held_body += message.get("body", b"")
            if message.get("more_body", False):
                return
            if held_body in self._LIMITER_BODIES:
                kept = [
                    (name, value)
                    for name, value in held.get("headers", [])
                    if name.lower() not in (b"content-type", b"content-length")
                ]
                headers = [
                    *kept,
                    (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
                    (b"content-length", str(len(self.body)).encode()),
                ]
                await send({**held, "headers": headers})
                await send({"type": "http.response.body", "body": self.body})
            else:
                await send(held)
                await send({"type": "http.response.body", "body": held_body})
            held = None

        await self.app(scope, receive, send_json)


class ServiceApp(FastAPI):
    """FastAPI with the body-size limit's answer in the platform's error shape."""

    def build_middleware_stack(self) -> ASGIApp:
        stack = super().build_middleware_stack()
        if self.max_body_size is None:
            return stack
        return JsonTooLarge(stack, max_bytes=self.max_body_size)


# --- ETag / If-Match -----------------------------------------------------------

# [0-9], not \d: \d also matches other scripts' digits, which int() would accept.
_VERSION_TAG = re.compile(r'(?:W/)?"([0-9]{1,18})"|([0-9]{1,18})')


def parse_if_match(header: str | None) -> int | None:
    """The stream version a caller expects, from ``If-Match``.

    Accepts ``"3"``, ``3`` and ``W/"3"``. Absent, empty or ``*`` means "no
    expectation" (None). Anything else, including several tags, is a 422.
    """
    if header is None:
        return None
    value = header.strip()
    if value in ("", "*"):
        return None
    match = _VERSION_TAG.fullmatch(value)
    if match is None:
        raise Unprocessable("If-Match", 'expected one version tag such as "3"')
    return int(match.group(1) or match.group(2))


def etag_for(version: int) -> str:
    """The ETag header value for a stream at ``version`` (what If-Match sends back)."""
    return f'"{version}"'


async def if_match_version(
    if_match: Annotated[str | None, Header(alias="If-Match")] = None,
) -> int | None:
    """Dependency: the parsed If-Match of the request (None when absent)."""
    return parse_if_match(if_match)


# --- the factory ---------------------------------------------------------------


def configure_logging(level: str) -> None:
    """Structured log lines as JSON on stdout, with the request's ids in each one."""
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(),
        cache_logger_on_first_use=False,
    )


# Swagger UI's and ReDoc's files as a package ships them: /docs works offline and
# behind a firewall that blocks CDNs (FastAPI's own pages load them from one).
DOCS_ASSETS_PATH = "/docs-assets"
_DOCS_ASSETS = Path(fastapi_offline.__file__).parent / "static"


def install_offline_docs(app: FastAPI) -> None:
    """``/docs`` (Swagger UI) and ``/redoc`` for ``app.openapi_url``, assets served locally."""
    openapi_url = app.openapi_url or "/openapi.json"
    app.mount(DOCS_ASSETS_PATH, StaticFiles(directory=_DOCS_ASSETS), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{DOCS_ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{DOCS_ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{root}{DOCS_ASSETS_PATH}/favicon.png",
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{DOCS_ASSETS_PATH}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{DOCS_ASSETS_PATH}/favicon.png",
            with_google_fonts=False,
        )


class _MetricsEndpoint:
    """The Prometheus ASGI app as an exact route, so ``/metrics`` needs no redirect."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await metrics_app(scope, receive, send)


def create_service_app(
    *,
    title: str,
    version: str,
    settings: ServiceSettings,
    routers: Sequence[APIRouter],
    lifespan: Lifespan[FastAPI] | None = None,
) -> FastAPI:
    configure_logging(settings.log_level)
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

    app.add_exception_handler(RequestValidationError, _validation_failed)
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    install_problem_openapi(app)
    app.add_middleware(RequestContextMiddleware, service=settings.service_name)

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

    for router in routers:
        app.include_router(router)
    return app


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
