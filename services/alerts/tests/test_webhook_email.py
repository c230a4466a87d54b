"""E-mail notifications through a real SMTP server (aiosmtpd on a free port)."""

from __future__ import annotations

import email
import json
import socket
from collections.abc import Iterator
from email.message import Message
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from libs.events.kafka import KafkaSettings, service_topic
from services.alerts.settings import Settings
from services.alerts.tests.conftest import eventually
from services.alerts.tests.test_webhooks import deliveries, owner_changed, running, tenant


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[tuple[list[str], Message]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((list(envelope.rcpt_tos), email.message_from_bytes(envelope.content)))
        return "250 Message accepted for delivery"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    port = free_port()
    server = Controller(box, hostname="127.0.0.1", port=port)
    server.start()
    yield box, port
    server.stop()


async def test_an_event_is_mailed_to_a_mailto_subscription(
    settings: Settings, kafka: KafkaSettings, mailbox: tuple[Mailbox, int]
) -> None:
    box, port = mailbox
    configured = settings.model_copy(
        update={
            "smtp_host": "127.0.0.1",
            "smtp_port": port,
            "smtp_starttls": False,
            "smtp_from": "crm@example.com",
            "webhook_poll_seconds": 0.05,
        }
    )
    acme = tenant()
    async with running(configured, kafka) as api:
        created = await api.client.post(
            "/api/v1/webhooks",
            json={"url": "mailto:Ops@Example.com", "event_types": ["crm.contacts.owner_changed.*"]},
            headers=api.auth(acme, roles=["admin"]),
        )
        assert created.status_code == 201, created.text
        assert created.json()["channel"] == "email"
        event = owner_changed("c-1", acme)
        await api.send(service_topic("contacts"), [event])

        async def mailed() -> bool:
            return bool(box.messages)

        await eventually(mailed)

        async def recorded() -> bool:
            log = await deliveries(api, acme, created.json()["id"])
            return bool(log) and log[0]["status"] == "delivered"

        await eventually(recorded)
    [(recipients, message)] = box.messages
    assert recipients == ["Ops@example.com"]
    assert message["From"] == "crm@example.com"
    assert message["X-CRM-Event-Id"] == event.id
    assert "crm.contacts.owner_changed.v1" in message["Subject"]
    body = json.loads(message.get_payload(decode=True))  # type: ignore[arg-type]
    assert (body["id"], body["data"]["customer_id"]) == (event.id, "c-1")
