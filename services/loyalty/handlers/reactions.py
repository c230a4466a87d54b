"""What other services' events do to ledgers: a consumer of ``crm.pipeline.events``,
``crm.contacts.events`` and ``crm.tickets.events`` on the projection runtime.

Each event becomes a command on the customer's ledger, appended inside the
runtime's batch transaction (a savepoint per event), so the ledger lines, the
event ids the runtime records and the offsets it saves commit together. A
redelivered event is skipped by the runtime; one that gets past it (a rebuild's
new consumer group, a republished topic) finds its source event already on the
ledger, which refuses a second line.

A referral (decision 0040) is settled on the referred customer's ledger; when it
qualifies, the referrer's bonus is earned on the referrer's ledger in the same batch
transaction, so the two never part.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import ClassVar

from sqlalchemy.ext.asyncio import AsyncConnection

from libs.events.catalog import DomainEvent, EventCatalog
from libs.events.catalog.contacts import (
    CustomerMerged,
    CustomerMergedInto,
    CustomerReferred,
    CustomerRegistered,
    PersonalDataErased,
    ProfileChanged,
)
from libs.events.catalog.loyalty import ReferralQualified
from libs.events.catalog.pipeline import OrderCancelled, OrderPlaced, OrderRefunded
from libs.events.catalog.tickets import CsatAnswered, NpsAnswered
from libs.events.consumer import ReceivedEvent
from libs.events.kafka import service_topic
from libs.events.projection import Projection
from libs.platform.birthdays import UNCHANGED, birthday_news
from services.loyalty import read_model
from services.loyalty.commands import (
    ClawBackCancellation,
    ClawBackRefund,
    EarnForOrder,
    EarnSurveyBonus,
    LedgerCommand,
    RecordReferral,
)
from services.loyalty.domain.decisions import referral_bonus
from services.loyalty.handlers import Cause, Loyalty, execute, transfer_ledger
from services.loyalty.handlers.batch import LedgerWork, execute_run

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
        CustomerReferred,
        CsatAnswered,
        NpsAnswered,
    ],
    schema_base_url="https://schemas.crm.example/events",
)


class Earning(Projection):
    name: ClassVar[str] = "loyalty_earning"

    def __init__(self, loyalty: Loyalty, generation: int = 1) -> None:
        super().__init__(generation)
        self.loyalty = loyalty
        self.topics = [
            service_topic("pipeline"),
            service_topic("contacts"),
            service_topic("tickets"),
        ]

    async def apply(self, conn: AsyncConnection, event: ReceivedEvent) -> None:
        envelope = event.envelope
        tenant_id = envelope.tenantid
        cause = Cause(envelope.id, envelope.correlationid)
        fact = event.event
        # The birthday bonus's birthday, by the platform's one rule (an erasure forgets
        # it; points and lines are ids and amounts, they stay).
        news = birthday_news(fact)
        if news is not UNCHANGED:
            await read_model.set_birthday(conn, tenant_id, fact.customer_id, news)  # type: ignore[attr-defined]
        command = ledger_command(event)
        if command is not None:
            outcome = await execute(
                self.loyalty,
                tenant_id,
                event.event.customer_id,  # type: ignore[attr-defined]
                command,
                conn=conn,
                cause=cause,
                follow_merge=True,
            )
            await self.pay_referrers(conn, tenant_id, outcome.events, cause)
        elif isinstance(fact, CustomerRegistered):
            await read_model.add_member(conn, tenant_id, fact.customer_id, envelope.time)
        elif isinstance(fact, CustomerMergedInto):
            moved = await transfer_ledger(
                self.loyalty, tenant_id, fact.customer_id, fact.survivor_id, conn=conn, cause=cause
            )
            await self.pay_referrers(conn, tenant_id, moved.events, cause)

    async def apply_many(self, conn: AsyncConnection, events: Sequence[ReceivedEvent]) -> None:
        """Runs of events that are each a command on one ledger are decided together
        (``batch.execute_run``); every other event, in its place, one at a time."""
        run: list[tuple[ReceivedEvent, LedgerWork]] = []
        for event in events:
            command = ledger_command(event)
            if command is not None:
                envelope = event.envelope
                work = LedgerWork(
                    envelope.tenantid,
                    event.event.customer_id,  # type: ignore[attr-defined]
                    command,
                    Cause(envelope.id, envelope.correlationid),
                )
                run.append((event, work))
                continue
            await self.apply_run(conn, run)
            run = []
            await self.apply(conn, event)
        await self.apply_run(conn, run)

    async def apply_run(
        self, conn: AsyncConnection, run: Sequence[tuple[ReceivedEvent, LedgerWork]]
    ) -> None:
        # The run pays the referrals it qualifies itself (its referrers are in it).
        if await execute_run(self.loyalty, conn, [work for _, work in run]) is None:
            for event, _ in run:
                await self.apply(conn, event)

    async def pay_referrers(
        self, conn: AsyncConnection, tenant_id: str, events: Sequence[DomainEvent], cause: Cause
    ) -> None:
        """The bonus of every referral these events qualified, on the referrer's ledger
        (or its survivor's); its source ``referral:<referred>`` makes it once, ever."""
        for qualified in events:
            if isinstance(qualified, ReferralQualified) and qualified.points > 0:
                await execute(
                    self.loyalty,
                    tenant_id,
                    qualified.referrer_id,
                    referral_bonus(qualified),
                    conn=conn,
                    cause=cause,
                    follow_merge=True,
                )


def ledger_command(event: ReceivedEvent) -> LedgerCommand | None:
    """The command an event is on its customer's own ledger; None for the events that
    are something else (members, birthdays, merges) or nothing to loyalty."""
    envelope, fact = event.envelope, event.event
    if isinstance(fact, OrderPlaced):
        return EarnForOrder(envelope.id, fact.order_id, fact.total, fact.currency, fact.placed_at)
    if isinstance(fact, OrderRefunded):
        return ClawBackRefund(envelope.id, fact.order_id, fact.refund_id, fact.amount)
    if isinstance(fact, OrderCancelled):
        return ClawBackCancellation(envelope.id, fact.order_id)
    if isinstance(fact, CsatAnswered | NpsAnswered):
        kind = "CSAT" if isinstance(fact, CsatAnswered) else "NPS"
        return EarnSurveyBonus(envelope.id, fact.survey_id, kind, envelope.time)
    if isinstance(fact, CustomerReferred):
        # The envelope's time is when contacts recorded the referral.
        return RecordReferral(envelope.id, fact.referrer_id, envelope.time)
    return None


def earning_factory(loyalty: Loyalty) -> Callable[[int], Earning]:
    return lambda generation: Earning(loyalty, generation)
