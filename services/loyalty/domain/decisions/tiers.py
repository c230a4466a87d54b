"""Tiers: the qualifying spend of a rolling window, and the tier it reaches (with the
tenant's grace period before a downgrade)."""

from __future__ import annotations

from datetime import datetime, timedelta

from libs.events.catalog.loyalty import TierAtRisk, TierChanged, TierChangeReason, TierKept
from services.loyalty.domain.decisions.decision import Decision
from services.loyalty.domain.ledger import Ledger
from services.loyalty.domain.rules import RulesBook, add_months, tier_for


def qualifying_spend(ledger: Ledger, window_months: int, at: datetime) -> int:
    """Net spend of the orders placed in the rolling window ending at ``at``."""
    since = add_months(at, -window_months)
    return sum(o.net_amount for o in ledger.orders.values() if since < o.placed_at <= at)


def retier(d: Decision, rules: RulesBook, now: datetime, reason: TierChangeReason) -> None:
    """Up at once; down at once, or after the tenant's grace period unless regained."""
    current = rules.at(now)
    spend = qualifying_spend(d.ledger, current.tier_window_months, now)
    reached = tier_for(current, spend)
    held_name = d.ledger.tier or tier_for(current, 0).name
    held = next((t for t in current.tiers if t.name == held_name), None)
    customer = d.ledger.customer_id
    falling = held is not None and reached.threshold < held.threshold
    if falling and current.downgrade_grace_days:
        if d.ledger.downgrade_at is None:
            d.emit(
                TierAtRisk(
                    customer_id=customer,
                    tier=held_name,
                    qualifying_spend=spend,
                    downgrade_at=now + timedelta(days=current.downgrade_grace_days),
                )
            )
            return
        if now < d.ledger.downgrade_at:
            return
    if reached.name != held_name:
        d.emit(
            TierChanged(
                customer_id=customer,
                from_tier=held_name,
                to_tier=reached.name,
                qualifying_spend=spend,
                reason=reason,
                changed_at=now,
            )
        )
    elif d.ledger.downgrade_at is not None:
        d.emit(TierKept(customer_id=customer, tier=held_name, qualifying_spend=spend))
