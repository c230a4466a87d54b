"""Traces configured by the standard OTEL_* variables (decision 0103): off unless an
endpoint is named, a ratio of the actions and no poll, and logs and metrics that lead to
their trace. The process's global tracer provider is never set here: a local one plays
the request, so no other test pays for spans."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import Decision
from opentelemetry.trace import SpanKind
from prometheus_client import REGISTRY
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics
from starlette.types import Receive, Scope, Send

from libs.platform.request_context import RequestContextMiddleware
from libs.platform.structured_logs import configure_logging
from libs.platform.trace_sampling import actions_sampler
from libs.platform.tracing import add_trace_ids, sampler_from, tracing_enabled

ENDPOINT = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}


@pytest.fixture
def tracer(monkeypatch: pytest.MonkeyPatch) -> Iterator[trace.Tracer]:
    # The suite disables the SDK for every service it builds; this provider is the test's.
    monkeypatch.delenv("OTEL_SDK_DISABLED", raising=False)
    provider = TracerProvider()
    yield provider.get_tracer("test")
    provider.shutdown()


def test_traces_are_off_unless_an_endpoint_is_named_and_the_sdk_is_not_disabled() -> None:
    assert not tracing_enabled({})
    assert tracing_enabled(ENDPOINT)
    assert tracing_enabled({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318"})
    assert not tracing_enabled({**ENDPOINT, "OTEL_SDK_DISABLED": "true"})


def test_the_sampling_ratio_is_otel_traces_sampler_arg_and_must_be_a_ratio() -> None:
    assert "1.0" in sampler_from({}).get_description()  # type: ignore[union-attr]
    assert "0.1" in sampler_from({"OTEL_TRACES_SAMPLER_ARG": "0.1"}).get_description()  # type: ignore[union-attr]
    assert sampler_from({"OTEL_TRACES_SAMPLER": "always_on"}) is None  # the SDK's choice
    with pytest.raises(ValueError, match="between 0 and 1"):
        sampler_from({"OTEL_TRACES_SAMPLER_ARG": "10"})
    with pytest.raises(ValueError, match="a ratio"):
        sampler_from({"OTEL_TRACES_SAMPLER_ARG": "ten percent"})


@pytest.mark.parametrize(
    ("kind", "kept"),
    [
        (SpanKind.SERVER, True),  # a request arrives: an action starts
        (SpanKind.CONSUMER, True),  # a replayed event, linked to its action
        (SpanKind.PRODUCER, True),  # a republished event, linked to its action
        (SpanKind.CLIENT, False),  # a relay's or a consumer's poll of its tables
        (SpanKind.INTERNAL, False),
    ],
)
def test_a_trace_starts_with_an_action_never_with_a_poll(kind: SpanKind, kept: bool) -> None:
    decision = actions_sampler(1.0).should_sample(None, 0xABC, "span", kind)

    assert (decision.decision is Decision.RECORD_AND_SAMPLE) is kept


def test_a_span_inside_a_sampled_action_is_kept_whatever_its_kind(tracer: trace.Tracer) -> None:
    with tracer.start_as_current_span("POST /api/v1/customers", kind=SpanKind.SERVER):
        parent = trace.set_span_in_context(trace.get_current_span())
        decision = actions_sampler(0.0).should_sample(parent, 0xABC, "SELECT", SpanKind.CLIENT)

    assert decision.decision is Decision.RECORD_AND_SAMPLE


def test_a_log_line_written_inside_a_span_carries_its_trace_and_span_ids(
    tracer: trace.Tracer,
) -> None:
    outside = add_trace_ids(None, "info", {"event": "request"})
    with tracer.start_as_current_span("POST /api/v1/customers") as span:
        inside = add_trace_ids(None, "info", {"event": "request"})

    context = span.get_span_context()
    assert "trace_id" not in outside
    assert inside["trace_id"] == f"{context.trace_id:032x}"
    assert inside["span_id"] == f"{context.span_id:016x}"


def test_the_log_lines_of_a_traced_request_name_it(
    tracer: trace.Tracer, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("INFO")
    with tracer.start_as_current_span("POST /api/v1/customers") as span:
        structlog.get_logger("crm.test").info("customer_registered")

    assert f'"trace_id": "{span.get_span_context().trace_id:032x}"' in capsys.readouterr().out


async def test_the_request_latency_histogram_points_at_the_requests_trace(
    tracer: trace.Tracer,
) -> None:
    async def registration(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 201, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    middleware = RequestContextMiddleware(registration, service="tracing-test")
    scope: dict[str, Any] = {
        "type": "http",
        "method": "POST",
        "path": "/api/v1/customers",
        "headers": [],
        "crm.route_template": "/api/v1/customers",
    }

    async def receive() -> Any:
        return {"type": "http.request", "body": b""}

    async def send(_message: Any) -> None:
        pass

    with tracer.start_as_current_span("POST /api/v1/customers") as span:
        await middleware(scope, receive, send)

    exposed = openmetrics(REGISTRY).decode()  # type: ignore[no-untyped-call]
    trace_id = f"{span.get_span_context().trace_id:032x}"
    (bucket,) = [
        line
        for line in exposed.splitlines()
        if line.startswith("crm_http_request_duration_seconds_bucket")
        and 'service="tracing-test"' in line
        and "# {" in line
    ]
    assert f'trace_id="{trace_id}"' in bucket
