"""What a caller is shown about a ledger at a moment (pure)."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from services.loyalty.domain.decisions import qualifying_spend
from services.loyalty.domain.ledger import Ledger
from services.loyalty.domain.rules import RulesBook, next_tier, tier_for


def account_view(
    ledger: Ledger, book: RulesBook, at: datetime, *, expiring_within_days: int = 30
) -> dict[str, Any]:
    rules = book.at(at)
    spend = qualifying_spend(ledger, rules.tier_window_months, at)
    tier = ledger.tier or tier_for(rules, 0).name
    following = next_tier(rules, spend)
    horizon = at + timedelta(days=expiring_within_days)
    expiring: dict[datetime, int] = defaultdict(int)
    for lot in ledger.lots:
        if lot.remaining > 0 and not lot.expired and lot.expires_at is not None:
            if lot.expires_at <= horizon:
                expiring[lot.expires_at] += lot.remaining
    return {
        "customer_id": ledger.customer_id,
        "as_of": at.isoformat(),
        "balance": ledger.balance,
        # Lots past their expiry that the sweep has not reached yet cannot be spent.
        "available": ledger.available_at(at),
        "owed": ledger.owed,
        "tier": tier,
        "qualifying_spend": spend,
        "next_tier": None
        if following is None
        else {
            "name": following.name,
            "threshold": following.threshold,
            "spend_needed": following.threshold - spend,
        },
        "expiring_soon": [
            {"expires_at": when.isoformat(), "points": points}
            for when, points in sorted(expiring.items())
        ],
        "merged_into": ledger.merged_into,
        "version": ledger.version,
    }
