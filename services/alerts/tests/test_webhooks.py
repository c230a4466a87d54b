"""Webhooks end to end: real PostgreSQL, the real broker, the app over HTTP and a real
HTTP receiver on a free port that checks every signature and answers as told."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from aiohttp import web
from cloudevents.v1.http import from_http
from prometheus_client import REGISTRY
from standardwebhooks import Webhook

from libs.events.catalog.contacts import OwnerChanged
from libs.events.envelope import EventEnvelope
from libs.events.kafka import KafkaSettings, service_topic
from libs.events.lag import end_offsets
from libs.events.store import EventStore
from libs.platform.db import create_engine
from services.alerts.app import create_app
from services.alerts.handlers import Alerts
from services.alerts.notifications.handlers.webhook_client import Resolve, resolve_host
from services.alerts.settings import Settings
from services.alerts.tests.conftest import Api, eventually, read_topic
from testing.consumers import Clock


@dataclass
class Receiver:
    """An HTTP endpoint that records what it gets and answers the statuses queued."""

    url: str = ""
    secret: str = ""
    statuses: list[int] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        verified = True
        try:
            Webhook(self.secret).verify(body, headers)
        except Exception:
            verified = False
        status = self.statuses.pop(0) if self.statuses else 200
        self.received.append(
            {"headers": headers, "body": body, "verified": verified, "status": status}
        )
        return web.Response(status=status)

    def of(self, event_id: str) -> list[dict[str, Any]]:
        return [r for r in self.received if r["headers"].get("webhook-id") == event_id]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    found = Receiver()
    server = web.Application()
    server.router.add_post("/hook", found.handle)
    runner = web.AppRunner(server)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    found.url = f"http://127.0.0.1:{port}/hook"
    yield found
    await runner.cleanup()


@pytest.fixture
def hook_settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "webhook_first_retry_seconds": 0.2,
            "webhook_max_backoff_seconds": 1.0,
            "webhook_max_attempts": 5,
            "webhook_disable_after": 20,
            "webhook_poll_seconds": 0.05,
            "webhook_timeout_seconds": 5.0,
            "webhook_allow_insecure_targets": True,
        }
    )


@contextlib.asynccontextmanager
async def running(
    settings: Settings,
    kafka: KafkaSettings,
    clock: Clock | None = None,
    resolve: Resolve = resolve_host,
) -> AsyncIterator[Api]:
    """The alerts app over HTTP, on the real clock (retries wait real time) unless given
    one, resolving webhook targets with ``resolve``."""
    store = EventStore(create_engine(settings.database_url))
    alerts = Alerts(store) if clock is None else Alerts(store, clock=clock)
    app = create_app(settings, alerts, resolve)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://alerts") as client:
            yield Api(client, settings, kafka, app)


def tenant() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


def owner_changed(customer_id: str, tenant_id: str, event_id: str | None = None) -> EventEnvelope:
    event = OwnerChanged(customer_id=customer_id, from_owner_id=None, to_owner_id="u-7")
    return EventEnvelope(
        id=event_id or str(uuid.uuid4()),
        source="/crm/contacts",
        type=OwnerChanged.type_name,
        subject=customer_id,
        time=datetime.now(UTC),
        tenantid=tenant_id,
        partitionkey=customer_id,
        sequence=2,
        data=event.model_dump(mode="json"),
    )


async def subscribe(api: Api, tenant_id: str, receiver: Receiver, **body: Any) -> dict[str, Any]:
    response = await api.client.post(
        "/api/v1/webhooks",
        json={"url": receiver.url, "event_types": ["crm.contacts.*"], **body},
        headers=api.auth(tenant_id, roles=["manager"]),
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    receiver.secret = created["secret"]
    return created


async def deliveries(api: Api, tenant_id: str, webhook_id: str) -> list[dict[str, Any]]:
    response = await api.client.get(
        f"/api/v1/webhooks/{webhook_id}/deliveries", headers=api.auth(tenant_id)
    )
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def webhook(api: Api, tenant_id: str, webhook_id: str) -> dict[str, Any]:
    response = await api.client.get(f"/api/v1/webhooks/{webhook_id}", headers=api.auth(tenant_id))
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


async def dispatched(api: Api) -> None:
    """Wait until the dispatcher has read every partition of its topics to its end as
    it is now (other tests' messages included)."""
    runner = api.app.state.notifications.dispatcher
    ends = await end_offsets(api.kafka, runner.projection.topics)

    async def done() -> bool:
        return all(runner.progress.get(tp, 0) >= end for tp, end in ends.items() if end)

    await eventually(done)


def counted(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_an_event_arrives_signed_as_a_cloudevent_after_two_500s(
    hook_settings: Settings, kafka: KafkaSettings, receiver: Receiver
) -> None:
    acme, other = tenant(), tenant()
    failed_before = counted("crm_webhook_deliveries_total", channel="webhook", outcome="failed")
    async with running(hook_settings, kafka) as api:
        created = await subscribe(api, acme, receiver)
        receiver.statuses = [500, 500]
        # Another tenant's event never reaches acme's receiver.
        await api.send(service_topic("contacts"), [owner_changed("c-9", other)])
        event = owner_changed("c-1", acme)
        await api.send(service_topic("contacts"), [event])

        async def delivered() -> bool:
            log = await deliveries(api, acme, created["id"])
            return bool(log) and log[0]["status"] == "delivered"

        await eventually(delivered)
        log = await deliveries(api, acme, created["id"])
        exposed = await api.client.get("/metrics")
    assert 'crm_webhook_deliveries_total{channel="webhook",outcome="failed"}' in exposed.text
    assert 'crm_webhook_delivery_failures_total{channel="webhook",reason="status"}' in exposed.text
    assert [r["status"] for r in receiver.received] == [500, 500, 200]
    assert all(r["verified"] for r in receiver.received)
    # One id on every attempt: the receiver's idempotency key, the CloudEvent's id.
    assert {r["headers"]["webhook-id"] for r in receiver.received} == {event.id}
    read = from_http(receiver.received[-1]["headers"], receiver.received[-1]["body"])
    assert (read["id"], read["type"], read["tenantid"]) == (event.id, OwnerChanged.type_name, acme)
    assert read.data["customer_id"] == "c-1"
    assert [(d["event_id"], d["attempts"]) for d in log] == [(event.id, 3)]
    assert [a["status_code"] for a in log[0]["log"]] == [500, 500, 200]
    after = counted("crm_webhook_deliveries_total", channel="webhook", outcome="failed")
    assert after - failed_before == 2
    sent = await read_topic(
        kafka,
        lambda found: any(
            e["type"] == "crm.alerts.notification_sent.v1"
            and e["data"]["subscription_id"] == created["id"]
            for e in found
        ),
    )
    record = [e for e in sent if e["data"].get("subscription_id") == created["id"]]
    assert [e["data"]["attempts"] for e in record if "attempts" in e["data"]] == [3]


async def test_a_receiver_that_keeps_failing_is_disabled_until_enabled_again(
    hook_settings: Settings, kafka: KafkaSettings, receiver: Receiver
) -> None:
    acme = tenant()
    settings = hook_settings.model_copy(
        update={"webhook_max_attempts": 3, "webhook_disable_after": 4}
    )
    async with running(settings, kafka) as api:
        created = await subscribe(api, acme, receiver)
        receiver.statuses = [500] * 4
        first, second = owner_changed("c-1", acme), owner_changed("c-2", acme)
        await api.send(service_topic("contacts"), [first])

        async def given_up() -> bool:
            log = await deliveries(api, acme, created["id"])
            return bool(log) and log[0]["status"] == "failed"

        await eventually(given_up)
        await api.send(service_topic("contacts"), [second])

        async def disabled() -> bool:
            return bool((await webhook(api, acme, created["id"]))["status"] == "disabled")

        await eventually(disabled)
        shown = await webhook(api, acme, created["id"])
        assert shown["consecutive_failures"] == 4
        assert "4 delivery attempts failed in a row" in shown["disabled_reason"]
        tried = len(receiver.received)
        # Disabled: no more attempts while it stays so.
        await asyncio.sleep(1.0)
        assert len(receiver.received) == tried == 4
        events = await read_topic(
            kafka,
            lambda found: any(
                e["type"] == "crm.alerts.webhook_disabled.v1"
                and e["data"]["subscription_id"] == created["id"]
                for e in found
            ),
        )
        assert any(e["data"].get("consecutive_failures") == 4 for e in events)

        enabled = await api.client.patch(
            f"/api/v1/webhooks/{created['id']}",
            json={"enabled": True},
            headers=api.auth(acme, roles=["admin"]),
        )
        assert enabled.status_code == 200, enabled.text
        assert (enabled.json()["status"], enabled.json()["consecutive_failures"]) == ("active", 0)

        async def second_delivered() -> bool:
            log = {d["event_id"]: d for d in await deliveries(api, acme, created["id"])}
            return bool(log[second.id]["status"] == "delivered")

        await eventually(second_delivered)
        log = {d["event_id"]: d for d in await deliveries(api, acme, created["id"])}
    # The delivery given up stays given up; the pending one went out once enabled.
    assert log[first.id]["status"] == "failed" and log[first.id]["attempts"] == 3
    assert len(receiver.of(second.id)) == 2 and receiver.of(second.id)[-1]["status"] == 200


async def test_a_redelivered_event_is_sent_once_across_a_restart_of_the_worker(
    hook_settings: Settings, kafka: KafkaSettings, receiver: Receiver
) -> None:
    acme = tenant()
    # The clock stands still in the first process, so its retry never comes due there,
    # however slow the machine; the second process starts after the retry's time.
    clock = Clock(datetime.now(UTC))
    settings = hook_settings.model_copy(update={"webhook_first_retry_seconds": 5.0})
    async with running(settings, kafka, clock) as api:
        created = await subscribe(api, acme, receiver)
        event = owner_changed("c-1", acme)
        receiver.statuses = [500]
        # The broker hands the dispatcher the same event twice (a relay's retry).
        await api.send(service_topic("contacts"), [event, event])

        async def failed_once() -> bool:
            log = await deliveries(api, acme, created["id"])
            return bool(log) and log[0]["attempts"] == 1 and bool(log[0]["log"])

        await eventually(failed_once)
        await dispatched(api)
    assert len(receiver.received) == 1
    # A new process: what was pending is in the database, not in the old one's memory.
    clock.now += timedelta(seconds=10)
    async with running(settings, kafka, clock) as api:

        async def delivered() -> bool:
            log = await deliveries(api, acme, created["id"])
            return bool(log[0]["status"] == "delivered")

        await eventually(delivered)
        # And the same event once more, after it was delivered.
        await api.send(service_topic("contacts"), [event])
        await dispatched(api)
        await asyncio.sleep(0.5)  # ten polls of the worker
        log = await deliveries(api, acme, created["id"])
    assert [r["status"] for r in receiver.of(event.id)] == [500, 200]
    assert len(log) == 1 and (log[0]["status"], log[0]["attempts"]) == ("delivered", 2)


async def test_an_alerts_event_goes_out_in_binary_mode_without_any_secret(
    hook_settings: Settings, kafka: KafkaSettings, receiver: Receiver
) -> None:
    acme = tenant()
    async with running(hook_settings, kafka) as api:
        watcher = await subscribe(
            api,
            acme,
            receiver,
            event_types=["crm.alerts.webhook_subscribed.v1"],
            content_mode="binary",
        )
        other = await api.client.post(
            "/api/v1/webhooks",
            json={"url": "https://erp.example/in?token=abc", "event_types": ["crm.alerts.*"]},
            headers=api.auth(acme, roles=["admin"]),
        )
        assert other.status_code == 201, other.text

        def subscribed(subscription_id: str) -> list[dict[str, Any]]:
            return [
                r
                for r in receiver.received
                if r["headers"].get("ce-type") == "crm.alerts.webhook_subscribed.v1"
                and json.loads(r["body"])["subscription_id"] == subscription_id
            ]

        async def arrived() -> bool:
            return bool(subscribed(other.json()["id"]))

        await eventually(arrived)
    [got] = subscribed(other.json()["id"])
    data = json.loads(got["body"])
    assert got["verified"]
    assert got["headers"]["content-type"] == "application/json"
    assert got["headers"]["ce-source"] == "/crm/alerts"
    assert data["target"] == "https://erp.example/in"
    assert data["event_types"] == ["crm.alerts.*"]
    # The secrets sign; they never travel in an event.
    bodies = b"".join(r["body"] for r in receiver.received).decode()
    assert other.json()["secret"] not in bodies and watcher["secret"] not in bodies


async def test_webhooks_are_managed_by_managers_and_show_their_secret_once(
    hook_settings: Settings, kafka: KafkaSettings, receiver: Receiver
) -> None:
    acme = tenant()
    async with running(hook_settings, kafka) as api:
        manager = api.auth(acme, roles=["manager"])
        refused = await api.client.post(
            "/api/v1/webhooks",
            json={"url": receiver.url, "event_types": ["crm.alerts.*"]},
            headers=api.auth(acme, roles=["sales"]),
        )
        assert refused.status_code == 403
        created = await subscribe(api, acme, receiver, description="ERP")
        assert created["secret"].startswith("whsec_")
        assert created["status"] == "active"
        listed = await api.client.get("/api/v1/webhooks", headers=manager)
        assert [w["id"] for w in listed.json()["items"]] == [created["id"]]
        assert "secret" not in listed.json()["items"][0]
        shown = await api.client.get(f"/api/v1/webhooks/{created['id']}", headers=manager)
        assert "secret" not in shown.json() and shown.headers["ETag"] == '"1"'
        # Another tenant does not see it.
        elsewhere = await api.client.get(
            f"/api/v1/webhooks/{created['id']}", headers=api.auth(tenant())
        )
        assert elsewhere.status_code == 404

        for body, field_name in [
            ({"url": receiver.url, "event_types": ["crm.alerts.alert_openned.v1"]}, "event_types"),
            ({"url": "mailto:ops@example.com", "event_types": ["*"]}, "url"),  # no SMTP here
            ({"url": receiver.url, "event_types": ["*"], "secret": "whsec_short"}, "secret"),
            ({"url": receiver.url, "event_types": []}, "event_types"),
        ]:
            bad = await api.client.post("/api/v1/webhooks", json=body, headers=manager)
            assert bad.status_code == 422, bad.text
            assert field_name in {e["field"].split(".")[-1] for e in bad.json()["errors"]}, bad.text

        stale = await api.client.patch(
            f"/api/v1/webhooks/{created['id']}",
            json={"event_types": ["crm.alerts.*"]},
            headers={**manager, "If-Match": '"7"'},
        )
        assert stale.status_code == 412
        changed = await api.client.patch(
            f"/api/v1/webhooks/{created['id']}",
            json={"event_types": ["crm.alerts.*", "crm.tickets.*"], "rotate_secret": True},
            headers={**manager, "If-Match": '"1"'},
        )
        assert changed.status_code == 200, changed.text
        assert changed.json()["event_types"] == ["crm.alerts.*", "crm.tickets.*"]
        assert changed.json()["secret"] != created["secret"]
        assert changed.json()["version"] == 2

        deleted = await api.client.delete(f"/api/v1/webhooks/{created['id']}", headers=manager)
        assert deleted.status_code == 204
        gone = await api.client.get(f"/api/v1/webhooks/{created['id']}", headers=manager)
        assert gone.status_code == 404
        again = await api.client.delete(f"/api/v1/webhooks/{created['id']}", headers=manager)
        assert again.status_code == 404
