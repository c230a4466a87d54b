"""Filing webhook deliveries a batch at a time files what one event at a time files:
the same events, the same documents, the ones read after an erasure redacted, whichever
path the consumer took (``WebhookDispatch.apply_many`` against ``apply``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from libs.events.catalog import DomainEvent
from libs.events.catalog.contacts import InteractionLogged, PersonalDataErased
from libs.events.catalog.tickets import TicketReplied
from libs.events.kafka import KafkaSettings
from services.alerts.notifications.handlers import WebhookDispatch
from services.alerts.notifications.read_model import deliveries
from services.alerts.settings import Settings
from services.alerts.tests.test_webhooks import (
    Receiver,
    hook_settings,  # noqa: F401  (the fixture)
    receiver,  # noqa: F401  (the fixture)
    running,
    subscribe,
    tenant,
)
from testing.projections import received


def history() -> list[tuple[str, DomainEvent]]:
    now = datetime.now(UTC)

    def call(customer: str, n: int) -> InteractionLogged:
        return InteractionLogged(
            customer_id=customer, interaction_id=f"i-{n}", channel="phone",
            direction="inbound", summary=f"Zorblax call {n}", by="u-1", occurred_at=now,
        )

    def reply(customer: str, n: int) -> TicketReplied:
        return TicketReplied(
            ticket_id=f"t-{customer}", customer_id=customer, reply_id=f"r-{n}", public=True,
            body=f"Dear Zorblax, reply {n}", by="u-2",
        )

    events: list[tuple[str, DomainEvent]] = []
    for n in range(12):
        events += [("c-1", call("c-1", n)), ("c-2", reply("c-2", n))]
        if n == 5:
            events.append(("c-1", PersonalDataErased(customer_id="c-1", erased_at=now, by="u")))
    return events


async def filed(api: Any, tenant_id: str) -> list[tuple[str, str]]:
    async with api.app.state.alerts.engine.connect() as conn:
        rows = await conn.execute(
            select(deliveries.c.event_type, deliveries.c.document).where(
                deliveries.c.tenant_id == tenant_id
            )
        )
        shapes = []
        for event_type, document in rows:
            kept = {k: v for k, v in document.items() if k not in ("id", "tenantid")}
            shapes.append((event_type, repr(sorted(kept.items()))))
    return sorted(shapes)


async def test_a_batch_files_the_deliveries_one_event_at_a_time_files(
    hook_settings: Settings,  # noqa: F811
    kafka: KafkaSettings,
    receiver: Receiver,  # noqa: F811
) -> None:
    one, many = tenant(), tenant()
    async with running(hook_settings, kafka) as api:
        for tenant_id in (one, many):
            await subscribe(
                api, tenant_id, receiver, event_types=["crm.contacts.*", "crm.tickets.*"]
            )
        dispatch = WebhookDispatch(api.app.state.notifications)
        later = datetime.now(UTC) + timedelta(minutes=1)  # after the subscriptions began
        engine = api.app.state.alerts.engine
        events = history()
        for event in received(one, events, repeat_every=0, at=later):
            async with engine.begin() as conn:
                await dispatch.apply(conn, event)
        batch = received(many, events, repeat_every=0, at=later)
        for start in range(0, len(batch), 7):
            async with engine.begin() as conn:
                await dispatch.apply_many(conn, batch[start : start + 7])

        singly, batched = await filed(api, one), await filed(api, many)

    assert batched == singly
    assert len(singly) == len(events)
    # c-2's twelve replies keep their text; every call of c-1, filed before its erasure
    # or after, is redacted.
    assert sum("zorblax" in document.lower() for _, document in singly) == 12
