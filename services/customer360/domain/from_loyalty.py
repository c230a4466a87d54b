"""What the loyalty service's events do to the 360 view (``crm.loyalty.events``).

The loyalty section: the balance, the tier (and when it falls, if at risk) and the
most recent ledger lines, each with its signed points and reason; a timeline line for
each. Every ledger event moves the balance by what the loyalty service's own fold
moves it (``services/loyalty/domain/ledger.py``): the balance is the sum of the lines.
A merge moves a duplicate's balance out (its row) and in (the survivor's row) as the
ledger does. Tenant-level events (rules, rewards) name no customer: not applied.

Loyalty events carry ids and amounts; a manager's adjustment reason and a cancelled
redemption's reason are free text, kept as a line's ``note``: left out of the redacted
line and blanked by an erasure. Decision 30 says more.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from libs.events.catalog.loyalty import (
    CheckedIn,
    LedgerTransferredIn,
    LedgerTransferredOut,
    OwedPointsRecovered,
    PointsAdjusted,
    PointsClawedBack,
    PointsEarned,
    PointsExpired,
    PointsRedeemed,
    RedemptionCancelled,
    TierAtRisk,
    TierChanged,
    TierKept,
    catalog,
)
from libs.events.kafka import service_topic
from services.customer360.domain.sections import utc_iso, with_sections
from services.customer360.domain.view import CustomerView, Fact, Outcome, Source

LOYALTY = Source("loyalty", service_topic("loyalty"), catalog)

# The ledger lines shown: the most recent by when they took effect.
RECENT_LINES = 20


def empty_account() -> dict[str, Any]:
    return {"balance": 0, "tier": None, "downgrade_at": None, "lines": []}


def _account(view: CustomerView) -> dict[str, Any]:
    return dict(view.sections.get("loyalty") or empty_account())


def _booked(
    view: CustomerView,
    fact: Fact,
    *,
    points: int,
    reason: str,
    at: datetime,
    summary: str,
    note: str = "",
    **refs: str | None,
) -> Outcome:
    """One ledger line: the balance moves by ``points`` (signed), the line is listed."""
    account = _account(view)
    line = {
        "event_id": fact.event_id,
        "at": utc_iso(at),
        "points": points,
        "reason": reason,
        "note": "" if view.erased else note,
        "order_id": refs.get("order_id"),
        "reward_id": refs.get("reward_id"),
    }
    lines = [*account["lines"], line]
    lines.sort(key=lambda li: (li["at"], li["event_id"]), reverse=True)
    account.update(balance=account["balance"] + points, lines=lines[:RECENT_LINES])
    entry = fact.entry(f"{summary}: {note}" if note else summary, summary, happened_at=at)
    return Outcome(with_sections(view, loyalty=account), entry)


def _points(points: int) -> str:
    return f"{points:+,} points"


@LOYALTY.on(PointsEarned)
def points_earned(view: CustomerView, event: PointsEarned, fact: Fact) -> Outcome:
    about = f" for order {event.order_id}" if event.order_id else ""
    if event.referred_customer_id:
        about = f": referred customer {event.referred_customer_id} placed a first order"
    elif event.survey_id:
        about = f" for answering survey {event.survey_id}"
    return _booked(
        view,
        fact,
        points=event.points,
        reason=event.reason,
        at=event.earned_at,
        summary=f"{_points(event.points)} earned ({event.reason}){about}",
        order_id=event.order_id,
    )


@LOYALTY.on(PointsClawedBack)
def points_clawed_back(view: CustomerView, event: PointsClawedBack, fact: Fact) -> Outcome:
    owed = f", {event.owed:,} owed" if event.owed else ""
    return _booked(
        view,
        fact,
        points=-event.points,
        reason="clawback",
        at=fact.time,
        summary=f"{_points(-event.points)} clawed back for order {event.order_id}{owed}",
        order_id=event.order_id,
    )


@LOYALTY.on(OwedPointsRecovered)
def owed_points_recovered(view: CustomerView, event: OwedPointsRecovered, fact: Fact) -> Outcome:
    return _booked(
        view,
        fact,
        points=-event.points,
        reason="owed_recovered",
        at=fact.time,
        summary=f"{_points(-event.points)}: owed points recovered",
    )


@LOYALTY.on(PointsRedeemed)
def points_redeemed(view: CustomerView, event: PointsRedeemed, fact: Fact) -> Outcome:
    return _booked(
        view,
        fact,
        points=-event.points,
        reason="redemption",
        at=fact.time,
        summary=f"{_points(-event.points)} redeemed for reward {event.reward_id} by {event.by}",
        reward_id=event.reward_id,
    )


@LOYALTY.on(RedemptionCancelled)
def redemption_cancelled(view: CustomerView, event: RedemptionCancelled, fact: Fact) -> Outcome:
    return _booked(
        view,
        fact,
        points=event.points,
        reason="redemption_cancelled",
        at=fact.time,
        summary=f"{_points(event.points)}: redemption {event.redemption_id} cancelled",
        note=event.reason,
        reward_id=event.reward_id,
    )


@LOYALTY.on(PointsExpired)
def points_expired(view: CustomerView, event: PointsExpired, fact: Fact) -> Outcome:
    return _booked(
        view,
        fact,
        points=-event.points,
        reason="expiry",
        at=event.expired_at,
        summary=f"{_points(-event.points)} expired",
    )


@LOYALTY.on(PointsAdjusted)
def points_adjusted(view: CustomerView, event: PointsAdjusted, fact: Fact) -> Outcome:
    return _booked(
        view,
        fact,
        points=event.points,
        reason="adjustment",
        at=event.adjusted_at,
        summary=f"{_points(event.points)} adjusted by {event.by}",
        note=event.reason,
    )


@LOYALTY.on(LedgerTransferredOut)
def ledger_transferred_out(view: CustomerView, event: LedgerTransferredOut, fact: Fact) -> Outcome:
    return _booked(
        view,
        fact,
        points=-event.points,
        reason="merged_out",
        at=fact.time,
        summary=f"Balance {event.points:,} points moved to {event.survivor_id} (merge)",
    )


@LOYALTY.on(LedgerTransferredIn)
def ledger_transferred_in(view: CustomerView, event: LedgerTransferredIn, fact: Fact) -> Outcome:
    return _booked(
        view,
        fact,
        points=event.points,
        reason="merged_in",
        at=fact.time,
        summary=f"Balance {event.points:,} points taken over from {event.duplicate_id} (merge)",
    )


# --- tiers and check-ins ---------------------------------------------------------------


@LOYALTY.on(TierChanged)
def tier_changed(view: CustomerView, event: TierChanged, fact: Fact) -> Outcome:
    account = _account(view)
    account.update(tier=event.to_tier, downgrade_at=None)
    line = f"Tier {event.from_tier} -> {event.to_tier} ({event.reason})"
    return Outcome(
        with_sections(view, loyalty=account), fact.entry(line, happened_at=event.changed_at)
    )


@LOYALTY.on(TierAtRisk)
def tier_at_risk(view: CustomerView, event: TierAtRisk, fact: Fact) -> Outcome:
    account = _account(view)
    account.update(tier=event.tier, downgrade_at=utc_iso(event.downgrade_at))
    line = f"Tier {event.tier} at risk: falls {event.downgrade_at.isoformat()} unless regained"
    return Outcome(with_sections(view, loyalty=account), fact.entry(line))


@LOYALTY.on(TierKept)
def tier_kept(view: CustomerView, event: TierKept, fact: Fact) -> Outcome:
    account = _account(view)
    account.update(tier=event.tier, downgrade_at=None)
    return Outcome(with_sections(view, loyalty=account), fact.entry(f"Tier {event.tier} kept"))


@LOYALTY.on(CheckedIn)
def checked_in(view: CustomerView, event: CheckedIn, fact: Fact) -> Outcome:
    line = f"Checked in on {event.day.isoformat()} (streak {event.streak})"
    return Outcome(view, fact.entry(line))
