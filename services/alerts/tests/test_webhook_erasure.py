"""A customer erased in contacts leaves no personal data in the webhook deliveries kept
of their events: those stored are redacted, and one of their events read after the
erasure is filed (and sent) redacted."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from libs.events.catalog.contacts import InteractionLogged, PersonalDataErased
from libs.events.catalog.tickets import TicketReplied
from libs.events.kafka import KafkaSettings
from libs.platform.db import create_engine
from services.alerts.notifications.read_model import deliveries as deliveries_table
from services.alerts.settings import Settings
from services.alerts.tests.conftest import eventually
from services.alerts.tests.test_webhooks import (
    Receiver,
    deliveries,
    dispatched,
    hook_settings,  # noqa: F401  (the fixture)
    receiver,  # noqa: F401  (the fixture)
    running,
    subscribe,
    tenant,
)


async def stored_documents(settings: Settings, tenant_id: str) -> dict[str, dict[str, Any]]:
    engine = create_engine(settings.database_url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                select(deliveries_table.c.event_type, deliveries_table.c.document).where(
                    deliveries_table.c.tenant_id == tenant_id
                )
            )
            return {row.event_type: row.document for row in rows}
    finally:
        await engine.dispose()


async def test_an_erased_customers_deliveries_keep_nothing_personal(
    hook_settings: Settings,  # noqa: F811
    kafka: KafkaSettings,
    receiver: Receiver,  # noqa: F811
) -> None:
    acme, customer = tenant(), f"c-{uuid.uuid4().hex[:8]}"
    async with running(hook_settings, kafka) as api:
        created = await subscribe(
            api, acme, receiver, event_types=["crm.contacts.*", "crm.tickets.*"]
        )
        now = datetime.now(UTC)  # what happened since the subscription began is sent

        async def delivered(count: int) -> bool:
            log = await deliveries(api, acme, created["id"])
            return len([d for d in log if d["status"] == "delivered"]) == count

        call = InteractionLogged(
            customer_id=customer, interaction_id="i-1", channel="phone", direction="inbound",
            summary="Zorblax phoned about his divorce", by="u-1", occurred_at=now,
        )
        await api.publish("contacts", customer, call, tenant=acme, at=now)
        await eventually(lambda: delivered(1))
        erased = PersonalDataErased(customer_id=customer, erased_at=now, by="u-admin")
        await api.publish("contacts", customer, erased, tenant=acme, at=now)
        await dispatched(api)
        # Published by tickets before the erasure, read by alerts after it.
        reply = TicketReplied(
            ticket_id="t-1", customer_id=customer, reply_id="r-1", public=True,
            body="Dear Zorblax, we are sorry", by="u-2",
        )
        await api.publish("tickets", customer, reply, tenant=acme, at=now)
        await eventually(lambda: delivered(3))

    stored = await stored_documents(hook_settings, acme)
    assert "zorblax" not in str(stored).lower()
    [sent_reply] = [r["body"] for r in receiver.received if b".ticket_replied." in r["body"]]
    assert b"zorblax" not in sent_reply.lower()
    kept = stored[InteractionLogged.type_name]["data"]
    assert (kept["summary"], kept["channel"], kept["customer_id"]) == ("", "phone", customer)
    assert stored[TicketReplied.type_name]["data"]["body"] == ""
