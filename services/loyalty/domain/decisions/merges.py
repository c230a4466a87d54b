"""Merges: a duplicate customer's ledger moves out, whole, into the survivor's."""

from __future__ import annotations

from datetime import datetime

from libs.events.catalog import DomainEvent
from libs.events.catalog.loyalty import LedgerTransferredIn, LedgerTransferredOut
from services.loyalty.commands import TransferLedgerOut
from services.loyalty.domain.decisions.decision import Decision
from services.loyalty.domain.decisions.expiry import expire_due
from services.loyalty.domain.decisions.referrals import settle_referral
from services.loyalty.domain.ledger import Ledger, lots_of, orders_of
from services.loyalty.domain.rules import RulesBook


def transfer_out(ledger: Ledger, command: TransferLedgerOut) -> LedgerTransferredOut:
    return LedgerTransferredOut(
        customer_id=ledger.customer_id,
        survivor_id=command.survivor_id,
        source_event_id=command.source_event_id,
        points=ledger.balance,
        lots=lots_of(ledger),
        deficit=ledger.deficit,
        owed=ledger.owed,
    )


def transfer_in(
    duplicate: Ledger, survivor: Ledger, out: LedgerTransferredOut, rules: RulesBook, now: datetime
) -> list[DomainEvent]:
    """The survivor's side of a merge; ``duplicate`` is the ledger before it moved out."""
    if out.source_event_id in survivor.sources:
        return []
    d = Decision(survivor)
    expire_due(d, now)
    d.emit(
        LedgerTransferredIn(
            customer_id=survivor.customer_id,
            duplicate_id=duplicate.customer_id,
            source_event_id=out.source_event_id,
            points=out.points,
            lots=out.lots,
            deficit=out.deficit,
            owed=out.owed,
            orders=orders_of(duplicate),
            sources=sorted(duplicate.sources),
            referral=duplicate.referral if not duplicate.referral_settled else None,
        )
    )
    settle_referral(d, rules, out.source_event_id)
    return d.events
