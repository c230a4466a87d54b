"""What other services' events do to ledgers: a consumer of ``crm.pipeline.events``
and ``crm.contacts.events`` on the projection runtime.

Each event becomes a command on the customer's ledger, appended inside the
runtime's batch transaction (a savepoint per event), so the ledger lines, the
event ids the runtime records and the offsets it saves commit together. A
redelivered event is skipped by the runtime; one that gets past it (a rebuild's
new consumer group, a republished topic) finds its source event already on the
ledger, which refuses a second line.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from sqlalchemy.ext.asyncio import AsyncConnection

from libs.events.catalog import EventCatalog
from libs.events.catalog.contacts import (
    CustomerMerged,
    CustomerMergedInto,
    CustomerRegistered,
    PersonalDataErased,
    ProfileChanged,
)
from libs.events.catalog.pipeline import OrderCancelled, OrderPlaced, OrderRefunded
from libs.events.consumer import ReceivedEvent
from libs.events.kafka import service_topic
from libs.events.projection import Projection
from services.loyalty import read_model
from services.loyalty.commands import ClawBackCancellation, ClawBackRefund, EarnForOrder
from services.loyalty.handlers import Cause, Loyalty, execute, transfer_ledger

# Only the types loyalty acts on: the runtime counts and skips every other type.
SOURCES = EventCatalog(
    [
        OrderPlaced,
        OrderRefunded,
        OrderCancelled,
        CustomerRegistered,
        ProfileChanged,
        CustomerMerged,
        CustomerMergedInto,
        PersonalDataErased,
    ],
    schema_base_url="https://schemas.crm.example/events",
)


class Earning(Projection):
    name: ClassVar[str] = "loyalty_earning"

    def __init__(self, loyalty: Loyalty, generation: int = 1) -> None:
        super().__init__(generation)
        self.loyalty = loyalty
        self.topics = [service_topic("pipeline"), service_topic("contacts")]

    async def apply(self, conn: AsyncConnection, event: ReceivedEvent) -> None:
        envelope = event.envelope
        tenant_id = envelope.tenantid
        cause = Cause(envelope.id, envelope.correlationid)
        fact = event.event
        if isinstance(fact, OrderPlaced):
            command: EarnForOrder | ClawBackRefund | ClawBackCancellation = EarnForOrder(
                envelope.id, fact.order_id, fact.total, fact.currency, fact.placed_at
            )
        elif isinstance(fact, OrderRefunded):
            command = ClawBackRefund(envelope.id, fact.order_id, fact.refund_id, fact.amount)
        elif isinstance(fact, OrderCancelled):
            command = ClawBackCancellation(envelope.id, fact.order_id)
        elif isinstance(fact, CustomerRegistered):
            await read_model.add_member(conn, tenant_id, fact.customer_id, envelope.time)
            await read_model.set_birthday(conn, tenant_id, fact.customer_id, fact.birthday)
            return
        elif isinstance(fact, ProfileChanged | CustomerMerged):
            if fact.birthday is not None:
                await read_model.set_birthday(conn, tenant_id, fact.customer_id, fact.birthday)
            elif isinstance(fact, ProfileChanged) and "birthday" in fact.cleared:
                await read_model.set_birthday(conn, tenant_id, fact.customer_id, None)
            return
        elif isinstance(fact, PersonalDataErased):
            # Points and lines are ids and amounts: they stay; the birthday goes.
            await read_model.set_birthday(conn, tenant_id, fact.customer_id, None)
            return
        elif isinstance(fact, CustomerMergedInto):
            await read_model.set_birthday(conn, tenant_id, fact.customer_id, None)
            await transfer_ledger(
                self.loyalty, tenant_id, fact.customer_id, fact.survivor_id, conn=conn, cause=cause
            )
            return
        else:
            return
        await execute(
            self.loyalty,
            tenant_id,
            fact.customer_id,
            command,
            conn=conn,
            cause=cause,
            follow_merge=True,
        )


def earning_factory(loyalty: Loyalty) -> Callable[[int], Earning]:
    return lambda generation: Earning(loyalty, generation)
