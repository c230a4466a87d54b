"""One trace per action along the event path (decision 0103): the request that appends
an event, the relay's send of it, and each projection's apply of it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from cloudevents.core.bindings import kafka as ce_kafka
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Tracer
from sqlalchemy.ext.asyncio import AsyncEngine

from libs.events import tracing
from libs.events.envelope import EventEnvelope
from libs.events.kafka import KafkaSettings
from libs.events.projection import ProjectionRunner
from libs.events.store import EventStore
from libs.events.tests.conftest import relay_for
from libs.events.tests.sample import VisitTotals, catalog, visit
from libs.events.tests.test_outbox import read_topic

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

ENVELOPE = EventEnvelope(
    id="6f1c2b1e-0000-4000-8000-000000000002",
    source="/crm/contacts",
    type="crm.contacts.customer_registered.v1",
    subject="cust-7",
    time=datetime(2026, 3, 1, 8, 0, tzinfo=UTC),
    tenantid="acme",
    partitionkey="cust-7",
    sequence=1,
    data={"name": "王芳"},
    traceparent=TRACEPARENT,
    tracestate="crm=registration",
)


class Traces:
    """Spans finished in this test, and a tracer for the request the test plays."""

    def __init__(self, exporter: InMemorySpanExporter, provider: TracerProvider) -> None:
        self.exporter = exporter
        self.request: Tracer = provider.get_tracer("test.request")

    def named(self, prefix: str) -> list[ReadableSpan]:
        return [s for s in self.exporter.get_finished_spans() if s.name.startswith(prefix)]


@pytest.fixture
def traces(monkeypatch: pytest.MonkeyPatch) -> Iterator[Traces]:
    """Traces recorded in memory for this test only: the process's global tracer
    provider stays unset, so no other test pays for spans."""
    # The suite disables the SDK for every service it builds; this provider is the test's.
    monkeypatch.delenv("OTEL_SDK_DISABLED", raising=False)
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(tracing, "TRACER", provider.get_tracer("crm.events"))
    monkeypatch.setattr(tracing, "traces_recorded", lambda: True)
    yield Traces(exporter, provider)
    provider.shutdown()


def test_the_trace_context_travels_as_the_distributed_tracing_extension() -> None:
    record = ENVELOPE.to_kafka()
    headers = dict(record.headers)

    assert headers["ce_traceparent"] == TRACEPARENT.encode()
    assert headers["ce_tracestate"] == b"crm=registration"
    assert EventEnvelope.from_kafka(record.key, record.value, record.headers) == ENVELOPE
    stock = ce_kafka.from_binary_event(ce_kafka.KafkaMessage(headers, record.key, record.value))
    assert stock.get_extension("traceparent") == TRACEPARENT
    assert stock.get_extension("tracestate") == "crm=registration"


def test_an_event_without_a_trace_carries_no_tracing_attributes() -> None:
    untraced = visit("c-1")
    headers = [(name, value) for name, value in ENVELOPE.to_kafka().headers if "trace" not in name]
    record = EventEnvelope.from_kafka(b"c-1", b"{}", headers)

    assert untraced.traceparent is None and untraced.tracestate is None
    assert record.traceparent is None and "traceparent" not in record.attributes()


def test_an_event_made_while_a_request_is_traced_carries_that_requests_context(
    traces: Traces,
) -> None:
    with traces.request.start_as_current_span("POST /api/v1/customers") as request:
        made = visit("c-1")

    context = request.get_span_context()
    assert context.trace_flags.sampled
    flags = f"{context.trace_flags:02x}"
    assert made.traceparent == f"00-{context.trace_id:032x}-{context.span_id:016x}-{flags}"


async def test_the_append_the_send_and_the_apply_are_one_trace_through_the_broker(
    any_engine: AsyncEngine, kafka: KafkaSettings, unique: str, traces: Traces
) -> None:
    store = EventStore(any_engine)
    await store.create_tables()
    topic = f"crm.sample.{unique}"
    with traces.request.start_as_current_span("POST /api/v1/visits") as request:
        await store.append("acme", "c-1", 0, [visit("c-1", 5)])

    await relay_for(store, kafka, topic).relay_once()
    runner = ProjectionRunner(VisitTotals(topics=(topic,)), any_engine, kafka, catalog)
    await _apply_everything(runner, 1)

    ((_, headers, _),) = await read_topic(kafka, topic, 1)
    (append,) = traces.named("append")
    (send,) = traces.named("send ")
    (apply,) = traces.named("process ")
    trace_id = request.get_span_context().trace_id
    assert append.parent is not None
    assert append.parent.span_id == request.get_span_context().span_id
    assert headers["ce_traceparent"].decode().split("-")[1:3] == [
        f"{trace_id:032x}",
        f"{append.context.span_id:016x}",
    ]
    assert send.kind is SpanKind.PRODUCER and send.parent is not None
    assert send.parent.span_id == append.context.span_id
    assert apply.kind is SpanKind.CONSUMER and apply.parent is not None
    assert apply.parent.span_id == send.context.span_id
    assert {send.context.trace_id, apply.context.trace_id} == {trace_id}
    assert apply.attributes is not None
    assert apply.attributes["messaging.consumer.group.name"] == "visit_totals.g1"
    assert send.start_time is not None and apply.start_time is not None
    assert apply.start_time >= send.start_time  # the wait on the broker shows between them


async def test_a_republished_copy_and_a_rebuild_link_to_the_original_trace(
    pg_engine: AsyncEngine, kafka: KafkaSettings, unique: str, traces: Traces
) -> None:
    store = EventStore(pg_engine)
    await store.create_tables()
    topic = f"crm.sample.{unique}"
    with traces.request.start_as_current_span("POST /api/v1/visits") as request:
        await store.append("acme", "c-1", 0, [visit("c-1", 5)])
    original = request.get_span_context().trace_id

    await relay_for(store, kafka, topic).republish_all()
    rebuilt = ProjectionRunner(
        VisitTotals(generation=2, topics=(topic,)), pg_engine, kafka, catalog, replaying=True
    )
    await _apply_everything(rebuilt, 1)

    ((_, headers, _),) = await read_topic(kafka, topic, 1)
    assert headers["ce_traceparent"].decode().split("-")[1] == f"{original:032x}"
    for span in traces.named("send ") + traces.named("process "):
        assert span.parent is None
        assert span.context.trace_id != original
        assert [link.context.trace_id for link in span.links] == [original]


async def _apply_everything(runner: ProjectionRunner, events: int) -> None:
    stop = asyncio.Event()

    def applied() -> bool:
        return sum(runner.progress.values()) >= events

    await asyncio.wait_for(runner.run(stop, until=applied), timeout=60)
