"""Distributed traces with OpenTelemetry, configured by the standard ``OTEL_*`` variables.

Off unless an OTLP endpoint is named: ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) turns traces on, and ``OTEL_SDK_DISABLED=true``
keeps them off whatever else is set. Spans go out over OTLP/HTTP (protobuf) in batches.
Sampling is decided once, where a trace starts (the gateway, or a service called
directly), and followed by every hop after it, the broker included: the default keeps
``OTEL_TRACES_SAMPLER_ARG`` (a ratio, 1.0 unless set) of the actions and no background
poll (``trace_sampling.py``); ``OTEL_TRACES_SAMPLER`` picks a sampler as the SDK knows them.

The well-kept instrumentations do the HTTP and database spans (FastAPI, httpx,
SQLAlchemy); the event path's spans are ``libs.events.tracing`` (decision 0103).
The SDK and the instrumentations are imported only when traces are on: a process
without them starts as fast as before.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
from opentelemetry import trace
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.types import ASGIApp

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.sampling import Sampler

Client = TypeVar("Client", httpx.Client, httpx.AsyncClient)

# Probes and scrapes every few seconds would be most of the traces and none of the use.
UNTRACED_PATHS = "/livez$,/readyz$,/healthz$,/metrics$"


def tracing_enabled(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether this process exports traces: an OTLP endpoint is set, the SDK not disabled."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    return bool(
        environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
        or environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
    )


def sampler_from(environ: Mapping[str, str] = os.environ) -> Sampler | None:
    """The platform's default sampler; None leaves the choice to ``OTEL_TRACES_SAMPLER``."""
    from libs.platform.trace_sampling import actions_sampler

    if environ.get("OTEL_TRACES_SAMPLER", "").strip():
        return None
    raw = environ.get("OTEL_TRACES_SAMPLER_ARG", "").strip()
    try:
        ratio = float(raw) if raw else 1.0
    except ValueError as exc:
        raise ValueError(f"OTEL_TRACES_SAMPLER_ARG must be a ratio, not {raw!r}") from exc
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"OTEL_TRACES_SAMPLER_ARG must be between 0 and 1, not {raw!r}")
    return actions_sampler(ratio)


def configure_tracing(service: str, environ: Mapping[str, str] = os.environ) -> bool:
    """Install this process's tracer provider (once); return whether traces are on."""
    if not tracing_enabled(environ):
        return False
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    if isinstance(trace.get_tracer_provider(), TracerProvider):
        return True  # a second app in the same process (tests, uvicorn reload)
    name = environ.get("OTEL_SERVICE_NAME", "").strip() or service
    provider = TracerProvider(
        resource=Resource.create({SERVICE_NAME: name}), sampler=sampler_from(environ)
    )
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    # Every httpx client made from here on (webhooks, the gateway's health checks).
    HTTPXClientInstrumentor().instrument()
    return True


@contextmanager
def traced_command(service: str) -> Iterator[None]:
    """Traces of a one-off command (``crm republish``, ``crm rebuild``) as of the
    service it acts for: its republished sends and replayed applies, each linked to
    the action that first appended the event. Exported before the command ends (a
    batch still waiting would end with the process)."""
    on = configure_tracing(service)
    try:
        yield
    finally:
        shutdown = getattr(trace.get_tracer_provider(), "shutdown", None)
        if on and shutdown is not None:
            shutdown()


def traced_server(app: ASGIApp) -> ASGIApp:
    """A server span around each request ``app`` (a service's whole middleware stack)
    answers, when traces are on. The FastAPI instrumentation's ASGI middleware, with its
    span names (method and route template); outermost, so the access log line and the
    request's metric see the span. Not through ``FastAPIInstrumentor.instrument_app``:
    it expects Starlette's own stack and skips a service's, whose body limit wraps it."""
    if not tracing_enabled():
        return app
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
    from opentelemetry.instrumentation.fastapi import _get_default_span_details

    return OpenTelemetryMiddleware(
        app,
        excluded_urls=UNTRACED_PATHS,
        default_span_details=_get_default_span_details,
        # No span per ASGI message: they say nothing the request's span does not, and
        # were most of a request's spans.
        exclude_spans=["receive", "send"],
    )


def name_request_span(method: str, route: str) -> None:
    """Name the request's server span by the route template the platform labels its
    metrics with: the gateway's forwarding matches a catch-all route, and names the
    route of the service it forwards to."""
    span = trace.get_current_span()
    if span.is_recording():
        span.update_name(f"{method} {route}")
        span.set_attribute("http.route", route)


def trace_engine(engine: AsyncEngine) -> AsyncEngine:
    """Client spans for the statements ``engine`` runs through SQLAlchemy, when on."""
    if tracing_enabled():
        from opentelemetry import metrics
        from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer

        # What ``SQLAlchemyInstrumentor().instrument(engine=...)`` does for one engine:
        # the instrumentor instruments once per process (a second engine would be left
        # out) and patches every connect. Its declared range stops below SQLAlchemy 2.1;
        # the engine events it listens to are the same in 2.1.
        scope = "opentelemetry.instrumentation.sqlalchemy"
        EngineTracer(  # type: ignore[no-untyped-call]
            trace.get_tracer(scope),
            engine.sync_engine,
            metrics.get_meter(scope).create_up_down_counter("db.client.connections.usage"),
            enable_commenter=False,
        )
    return engine


def trace_client(client: Client) -> Client:
    """Client spans, and the trace context sent on, for an httpx client with its own
    transport (the global instrumentation covers httpx's own transports only)."""
    if tracing_enabled():
        from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

        HTTPXClientInstrumentor.instrument_client(client)
    return client


def add_trace_ids(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: the current span's ``trace_id`` and ``span_id`` on the line,
    so a log line leads to its trace and a trace to its lines."""
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event_dict.setdefault("trace_id", f"{context.trace_id:032x}")
        event_dict.setdefault("span_id", f"{context.span_id:016x}")
    return event_dict
