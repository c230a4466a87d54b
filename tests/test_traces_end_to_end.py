"""One trace per customer action, on `make run`'s setup with traces turned on: a
registration and an order, sent through the gateway by a client that traces its own
call, arrive at an OTLP receiver as one trace each, from the client's call through
the gateway, the writing service and the broker to every service that applied them
(decision 0103)."""

from __future__ import annotations

import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from libs.auth import issue_token
from libs.platform.settings import ServiceSettings
from testing.otlp import ReceivedSpan, SpanCollector, otlp_receiver
from tests.conftest import CLIENT_TIMEOUT, RunningPlatform, running_platform

TENANT = "traces-e2e"
APPLIERS_OF_CONTACTS = {"customer360", "loyalty", "alerts", "analytics", "pipeline", "tickets"}
APPLIERS_OF_PIPELINE = {"customer360", "loyalty"}


@pytest.fixture(scope="module")
def traced(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[RunningPlatform, SpanCollector]]:
    """The platform on SQLite (the embedded default), every span sent to our receiver."""
    with otlp_receiver() as collector:
        env = {
            "OTEL_SDK_DISABLED": "false",  # the one setting that turns traces on: an endpoint
            "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url,
            "OTEL_BSP_SCHEDULE_DELAY": "100",  # spans out in a tenth of a second, not five
        }
        with running_platform(tmp_path_factory.mktemp("traced"), "", env) as platform:
            yield platform, collector


@pytest.fixture(scope="module")
def client(traced: tuple[RunningPlatform, SpanCollector]) -> httpx.Client:
    token = issue_token(ServiceSettings().auth(), "ops@e2e", TENANT, ["admin"])
    return httpx.Client(
        base_url=traced[0].gateway,
        headers={"Authorization": f"Bearer {token}"},
        timeout=CLIENT_TIMEOUT,
    )


class ClientCall:
    """A call the test makes as a traced client would: a fresh trace, sampled."""

    def __init__(self) -> None:
        self.trace_id = secrets.token_hex(16)
        self.span_id = secrets.token_hex(8)
        self.headers = {"traceparent": f"00-{self.trace_id}-{self.span_id}-01"}


def trace_until(
    collector: SpanCollector, trace_id: str, complete: Callable[[list[ReceivedSpan]], bool]
) -> list[ReceivedSpan]:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        spans = collector.of_trace(trace_id)
        if complete(spans):
            return spans
        time.sleep(0.2)
    seen = sorted({(s.service, s.name) for s in collector.of_trace(trace_id)})
    pytest.fail(f"trace {trace_id} never completed; it holds {seen}")


def applied_by(
    call: ClientCall, topic: str, services: set[str]
) -> Callable[[list[ReceivedSpan]], bool]:
    """Every service applied it, and every span of it is in (each process exports on
    its own, so a parent can arrive after its children)."""

    def complete(spans: list[ReceivedSpan]) -> bool:
        applied = {s.service for s in spans if s.name == f"process {topic}"}
        return services <= applied and roots(spans) == {call.span_id}

    return complete


def roots(spans: list[ReceivedSpan]) -> set[str | None]:
    """What the trees of ``spans`` hang from: one id when the trace is one tree."""
    return {path_to_root(s, spans)[-1].parent_id for s in spans}


def path_to_root(span: ReceivedSpan, spans: list[ReceivedSpan]) -> list[ReceivedSpan]:
    """The span and its ancestors, up to the first whose parent is not in ``spans``."""
    by_id = {s.span_id: s for s in spans}
    path = [span]
    while path[-1].parent_id in by_id:
        path.append(by_id[path[-1].parent_id])  # type: ignore[index]
    return path


def hops(path: list[ReceivedSpan]) -> list[tuple[str, str]]:
    """The path as the services and span kinds it passed, without the spans inside one
    service's work (its statements, its middleware)."""
    passed = [(s.service, s.kind) for s in path if s.kind != "INTERNAL"]
    return [hop for i, hop in enumerate(passed) if i == 0 or hop != passed[i - 1]]


def assert_one_tree_through_the_broker(
    spans: list[ReceivedSpan], call: ClientCall, writer: str, topic: str, appliers: set[str]
) -> None:
    # Every span of the trace hangs from the client's call: one tree, no stray roots.
    assert roots(spans) == {call.span_id}
    for service in appliers:
        apply = next(s for s in spans if s.service == service and s.name == f"process {topic}")
        path = path_to_root(apply, spans)
        assert hops(path) == [
            (service, "CONSUMER"),
            (writer, "PRODUCER"),
            (writer, "SERVER"),
            ("gateway", "CLIENT"),
            ("gateway", "SERVER"),
        ]
        send = path[1]
        assert send.name == f"send {topic}"
        assert path[2].service == writer and path[2].name == "append"
        # The apply follows the send (it may begin before the relay has read the
        # broker's acknowledgement): the gap between their starts is the broker's.
        assert apply.start_ns >= send.start_ns


def test_a_registration_and_an_order_are_one_trace_each_through_the_broker(
    traced: tuple[RunningPlatform, SpanCollector], client: httpx.Client
) -> None:
    _, collector = traced
    registration = ClientCall()
    registered = client.post(
        "/api/v1/customers",
        json={"kind": "person", "name": "周杰", "email": "zhou.jie@example.com"},
        headers=registration.headers,
    )
    assert registered.status_code == 201, registered.text
    spans = trace_until(
        collector,
        registration.trace_id,
        applied_by(registration, "crm.contacts.events", APPLIERS_OF_CONTACTS),
    )
    assert_one_tree_through_the_broker(
        spans, registration, "contacts", "crm.contacts.events", APPLIERS_OF_CONTACTS
    )
    assert {s.service for s in spans} >= {"gateway", "contacts"} | APPLIERS_OF_CONTACTS
    # Named by route template, and the applies' statements under them (SQLAlchemy).
    servers = {s.service: s.name for s in spans if s.kind == "SERVER"}
    assert servers["contacts"] == "POST /api/v1/customers"
    assert servers["gateway"].startswith("POST /api/v1/customers")  # not its catch-all
    assert any(s.kind == "CLIENT" and any(k.startswith("db.") for k in s.attributes) for s in spans)

    order = ClientCall()  # the pipeline knows the customer now: it applied the registration
    placed = client.post(
        "/api/v1/orders",
        json={"customer_id": registered.json()["id"], "currency": "CNY", "total": 8800},
        headers=order.headers,
    )
    assert placed.status_code == 201, placed.text
    spans = trace_until(
        collector,
        order.trace_id,
        applied_by(order, "crm.pipeline.events", APPLIERS_OF_PIPELINE),
    )
    assert_one_tree_through_the_broker(
        spans, order, "pipeline", "crm.pipeline.events", APPLIERS_OF_PIPELINE
    )


def test_a_republish_from_the_command_line_links_each_copy_to_its_action(
    traced: tuple[RunningPlatform, SpanCollector], client: httpx.Client
) -> None:
    """``crm republish`` (an operator's way back from a lost topic) traces as the
    service it acts for: each copy it sends starts a trace of its own, linked to the
    action that appended the event, and is exported before the command ends."""
    platform, collector = traced
    call = ClientCall()
    registered = client.post(
        "/api/v1/customers",
        json={"kind": "person", "name": "林青", "email": "lin.qing@example.com"},
        headers=call.headers,
    )
    assert registered.status_code == 201, registered.text
    trace_until(collector, call.trace_id, applied_by(call, "crm.contacts.events", {"customer360"}))
    contacts = platform.commands["contacts"]
    done = subprocess.run(
        [sys.executable, "-m", "services.bootstrap", "republish", "contacts"],
        env=contacts.env,
        cwd=platform.logs,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("republished ")

    copies = [
        s
        for s in collector.linked_to(call.trace_id)
        if s.service == "contacts" and s.kind == "PRODUCER"
    ]
    assert copies, "the republished copy's send was not exported"
    assert all(s.trace_id != call.trace_id for s in copies)  # linked, not joined
