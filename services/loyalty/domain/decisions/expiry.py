"""Expiry: every decision first expires the lots that are due at ``now``, so expiry
happens exactly once per lot, in the service, whichever command or sweep comes first;
and when the sweep next has work on a ledger."""

from __future__ import annotations

from datetime import datetime

from libs.events.catalog.loyalty import PointsExpired
from services.loyalty.domain.decisions.decision import Decision
from services.loyalty.domain.ledger import Ledger
from services.loyalty.domain.rules import RulesBook, add_months, tier_for


def expire_due(d: Decision, now: datetime) -> None:
    due = [
        lot
        for lot in d.ledger.lots
        if not lot.expired
        and lot.remaining > 0
        and lot.expires_at is not None
        and lot.expires_at <= now
    ]
    for lot in sorted(due, key=lambda lot: (lot.expires_at, lot.earned_at)):
        assert lot.expires_at is not None
        d.emit(
            PointsExpired(
                customer_id=d.ledger.customer_id,
                lot_id=lot.lot_id,
                points=lot.remaining,
                expired_at=lot.expires_at,
            )
        )


def next_due(ledger: Ledger, rules: RulesBook, now: datetime) -> datetime | None:
    """When the sweep next has work on this ledger: a lot to expire, or (for a customer
    above the lowest tier) an order leaving the tier window."""
    times = [
        lot.expires_at
        for lot in ledger.lots
        if lot.remaining > 0 and not lot.expired and lot.expires_at is not None
    ]
    current = rules.at(now)
    if ledger.tier is not None and ledger.tier != tier_for(current, 0).name:
        leaving = (
            add_months(o.placed_at, current.tier_window_months) for o in ledger.orders.values()
        )
        times += [t for t in leaving if t > now]
    if ledger.downgrade_at is not None:
        times.append(ledger.downgrade_at)
    return min(times, default=None)
