"""Referrals: recorded on the referred customer's ledger, settled (qualified or lapsed)
once it also knows its first order, and the bonus the referrer then earns."""

from __future__ import annotations

from libs.events.catalog.loyalty import (
    ReferralLapsed,
    ReferralQualified,
    ReferralRecorded,
)
from services.loyalty.commands import EarnBonus, RecordReferral
from services.loyalty.domain.decisions.decision import Decision
from services.loyalty.domain.rules import RulesBook


def record_referral(d: Decision, command: RecordReferral, rules: RulesBook) -> None:
    ledger = d.ledger
    if command.source_event_id in ledger.sources or ledger.referral is not None:
        return  # seen, or referred already (contacts records one referral per customer)
    d.emit(
        ReferralRecorded(
            customer_id=ledger.customer_id,
            referrer_id=command.referrer_id,
            referred_at=command.referred_at,
            source_event_id=command.source_event_id,
        )
    )
    settle_referral(d, rules, command.source_event_id)


def settle_referral(d: Decision, rules: RulesBook, cause: str) -> None:
    """Once the ledger knows both its referral and its first order: the referrer earns
    the bonus if that order was placed at or after the referral was recorded, never if
    before. Whichever of the two arrives last settles it, so the outcome does not depend
    on how the contacts and pipeline topics interleave (decision 0040)."""
    ledger = d.ledger
    referral = ledger.referral
    if referral is None or ledger.referral_settled or ledger.first_order is None:
        return
    order_id, placed_at = ledger.first_order
    if placed_at < referral.referred_at:
        d.emit(
            ReferralLapsed(
                customer_id=ledger.customer_id,
                referrer_id=referral.referrer_id,
                order_id=order_id,
                reason=(
                    f"first order {order_id} was placed at {placed_at.isoformat()},"
                    f" before the referral was recorded at {referral.referred_at.isoformat()}"
                ),
            )
        )
        return
    d.emit(
        ReferralQualified(
            customer_id=ledger.customer_id,
            referrer_id=referral.referrer_id,
            order_id=order_id,
            points=rules.at(placed_at).referral_bonus,
            source_event_id=cause,
        )
    )


def referral_bonus(qualified: ReferralQualified) -> EarnBonus:
    """What the referrer's ledger is asked to earn: its source names the referred
    customer, so a referred customer earns its referrer one bonus, ever."""
    return EarnBonus(
        f"referral:{qualified.customer_id}",
        "referral",
        qualified.points,
        explanation=(
            f"referred customer {qualified.customer_id} placed a first order"
            f" {qualified.order_id} (event {qualified.source_event_id})"
        ),
        key=qualified.customer_id,
        referred_customer_id=qualified.customer_id,
    )
