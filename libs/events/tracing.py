"""Traces along the event path: the append, the relay's send, every consumer's apply.

One customer action is one trace (decision 0103). The request that appends an event
is current when the event is made, so its W3C trace context is stored with the event
(``NewEvent``; the ``append`` span's, where the store makes one) and goes to Kafka as
CloudEvents' ``traceparent``/``tracestate`` extension, unchanged on every copy. The
relay's send of it is a PRODUCER span, a child of that context, and the message
carries the send's own context in its plain ``traceparent`` header; each consumer's
apply is a CONSUMER span, a child of the send. So the gap between the append and the
send is the wait in the outbox, and the gap between the send and an apply the wait on
the broker.

A copy that is not the first delivery (the store published again to a topic the broker
lost, a projection rebuilt from the earliest offset) starts a trace of its own, linked
to the original: a rebuild is not part of the registration that happened last year.

Spans follow OpenTelemetry's messaging conventions. aiokafka's instrumentation wraps
``send`` and ``getone``/``getmany`` one message at a time; the relay sends record
batches and a projection applies a batch in one transaction, so the spans are made
here, where each event's context is known. With tracing off nothing is stored and no
span is made: a contextvar read per event made, a flag read per batch.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

if TYPE_CHECKING:
    from libs.events.envelope import KafkaRecord
    from libs.events.received import ReceivedEvent
    from libs.events.records import NewEvent

TRACER = trace.get_tracer("crm.events")
_W3C = TraceContextTextMapPropagator()
# The hop's context on a message: W3C trace context for Kafka, beside the ce_* headers.
DELIVERY_HEADER = "traceparent"
_EVENT_TRACEPARENT = "ce_traceparent"
_EVENT_TRACESTATE = "ce_tracestate"


def traces_recorded() -> bool:
    """Whether this process exports traces (a tracer provider was installed)."""
    return not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


def current_traceparent() -> str | None:
    """The current span's context as a W3C ``traceparent``; None outside any trace."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"


def current_tracestate() -> str | None:
    context = trace.get_current_span().get_span_context()
    return (context.trace_state.to_header() or None) if context.is_valid else None


def exemplar() -> dict[str, str] | None:
    """The current sampled span as a histogram exemplar, so a slow bucket leads to a
    trace (exposed in the OpenMetrics format only); None outside a sampled trace."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid or not context.trace_flags.sampled:
        return None
    return {"trace_id": f"{context.trace_id:032x}", "span_id": f"{context.span_id:016x}"}


@contextmanager
def appending(events: int) -> Iterator[None]:
    """The append of ``events`` (one transaction, or one round trip) as a span of the
    request: what the relay's send of them continues."""
    if not traces_recorded():
        yield
        return
    with TRACER.start_as_current_span("append", attributes={"crm.events": events}):
        yield


def stamped(events: Sequence[NewEvent]) -> Sequence[NewEvent]:
    """``events`` with the current span's context (inside ``appending``, the append's)
    in place of the one current when they were made."""
    if not traces_recorded():
        return events
    traceparent = current_traceparent()
    if traceparent is None:
        return events
    tracestate = current_tracestate()
    return [replace(e, traceparent=traceparent, tracestate=tracestate) for e in events]


def context_of(traceparent: str | None, tracestate: str | None = None) -> Context | None:
    """The context a ``traceparent`` names; None when it names none (absent, malformed)."""
    if not traceparent:
        return None
    carrier = {"traceparent": traceparent}
    if tracestate:
        carrier["tracestate"] = tracestate
    context = _W3C.extract(carrier)
    return context if trace.get_current_span(context).get_span_context().is_valid else None


def _header(headers: Sequence[tuple[str, bytes]], name: str) -> str | None:
    for key, value in headers:
        if key == name:
            return bytes(value).decode(errors="replace")
    return None


def _parent_and_links(
    context: Context | None, *, first_delivery: bool
) -> tuple[Context | None, list[Link]]:
    """A first delivery continues the trace; any other copy links to it instead."""
    if context is None:
        return None, []
    if first_delivery:
        return context, []
    return Context(), [Link(trace.get_current_span(context).get_span_context())]


@contextmanager
def publishing(
    topic: str, records: list[KafkaRecord], *, republishing: bool = False
) -> Iterator[list[KafkaRecord]]:
    """The relay sends ``records`` inside this block: one PRODUCER span per traced event,
    ended when the broker acknowledged the batch (or failed), and each record with its
    span's context in the ``traceparent`` header."""
    if not traces_recorded():
        yield records
        return
    spans: list[Span] = []
    sent: list[KafkaRecord] = []
    for record in records:
        origin = context_of(
            _header(record.headers, _EVENT_TRACEPARENT), _header(record.headers, _EVENT_TRACESTATE)
        )
        if origin is None:
            sent.append(record)
            continue
        parent, links = _parent_and_links(origin, first_delivery=not republishing)
        span = TRACER.start_span(
            f"send {topic}",
            context=parent,
            kind=SpanKind.PRODUCER,
            links=links,
            attributes={
                "messaging.system": "kafka",
                "messaging.operation.type": "send",
                "messaging.operation.name": "send",
                "messaging.destination.name": topic,
                "messaging.message.id": _header(record.headers, "ce_id") or "",
                "messaging.kafka.message.key": record.key.decode(errors="replace"),
                "cloudevents.event_type": _header(record.headers, "ce_type") or "",
            },
        )
        spans.append(span)
        carrier: dict[str, str] = {}
        _W3C.inject(carrier, context=trace.set_span_in_context(span))
        delivery = [(name, value.encode()) for name, value in carrier.items()]
        own = [h for h in record.headers if h[0] not in carrier]
        sent.append(replace(record, headers=[*own, *delivery]))
    with _ending(spans):
        yield sent


@contextmanager
def _ending(spans: Sequence[Span]) -> Iterator[None]:
    """Ends ``spans`` when the block does, each marked failed if the block raised."""
    try:
        yield
    except BaseException as exc:
        for span in spans:
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
        raise
    finally:
        for span in spans:
            span.end()


def delivery_context(headers: Sequence[tuple[str, bytes]]) -> str | None:
    """The relay's send of a message (its ``traceparent`` header), if it was traced."""
    return _header(headers, DELIVERY_HEADER)


@contextmanager
def processing(
    group: str, received: Sequence[ReceivedEvent], *, replaying: bool = False
) -> Iterator[None]:
    """A consumer applies ``received`` inside this block: one CONSUMER span per traced
    event, a child of the send that delivered it (or of the event's own context when
    it came without one); while ``replaying``, a root linked to the event's context.
    The batch's own work (its statements, its duration's exemplar) shows under the
    first of them."""
    if not traces_recorded():
        yield
        return
    spans: list[Span] = []
    for event in received:
        envelope = event.envelope
        action = context_of(envelope.traceparent, envelope.tracestate)
        # A replay links to the action itself, not to whichever copy delivered it.
        origin = action if replaying else context_of(event.delivered_by) or action
        if origin is None:
            continue
        parent, links = _parent_and_links(origin, first_delivery=not replaying)
        spans.append(
            TRACER.start_span(
                f"process {event.topic}",
                context=parent,
                kind=SpanKind.CONSUMER,
                links=links,
                attributes={
                    "messaging.system": "kafka",
                    "messaging.operation.type": "process",
                    "messaging.operation.name": "process",
                    "messaging.destination.name": event.topic,
                    "messaging.consumer.group.name": group,
                    "messaging.destination.partition.id": str(event.partition),
                    "messaging.kafka.offset": event.offset,
                    "messaging.message.id": envelope.id,
                    "cloudevents.event_type": envelope.type,
                },
            )
        )
    with _ending(spans):
        if spans:
            with trace.use_span(spans[0], end_on_exit=False):
                yield
        else:
            yield
