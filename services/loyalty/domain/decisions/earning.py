"""Earning: points for an order (by the rules in force when it was placed), fixed
bonuses (a survey answered, a referral), each a lot that first pays back owed points."""

from __future__ import annotations

from datetime import datetime

from libs.events.catalog.loyalty import OwedPointsRecovered, PointsEarned
from services.loyalty.commands import EarnBonus, EarnForOrder, EarnSurveyBonus
from services.loyalty.domain.decisions.decision import Decision, lot_id
from services.loyalty.domain.decisions.expiry import expire_due
from services.loyalty.domain.decisions.referrals import settle_referral
from services.loyalty.domain.decisions.tiers import qualifying_spend, retier
from services.loyalty.domain.rules import RulesBook, expiry_of, order_points, tier_for


def earn_for_order(d: Decision, command: EarnForOrder, rules: RulesBook, now: datetime) -> None:
    ledger = d.ledger
    if command.source_event_id in ledger.sources or command.order_id in ledger.orders:
        return  # a redelivery, a replay, or the same order published again
    placed_at = command.placed_at
    then = rules.at(placed_at)
    tier = tier_for(then, qualifying_spend(ledger, then.tier_window_months, placed_at))
    if ledger.downgrade_at is not None and placed_at < ledger.downgrade_at:
        # In a grace period the customer keeps the tier, and its multiplier.
        held = next((t for t in then.tiers if t.name == ledger.tier), None)
        if held is not None and held.threshold > tier.threshold:
            tier = held
    earning = order_points(then, command.amount, command.currency, tier, placed_at)
    expires_at = expiry_of(then, placed_at)
    lot = lot_id(ledger, "order", command.order_id)
    d.emit(
        PointsEarned(
            customer_id=ledger.customer_id,
            lot_id=lot,
            points=earning.points,
            reason="order",
            source_event_id=command.source_event_id,
            earned_at=placed_at,
            expires_at=expires_at,
            order_id=command.order_id,
            order_amount=command.amount,
            currency=command.currency,
            multiplier=earning.multiplier,
            explanation=earning.explanation,
        )
    )
    recover_owed(d, lot)
    expire_due(d, now)  # a historic order's points may already be past their expiry
    retier(d, rules, now, "order")
    settle_referral(d, rules, command.source_event_id)


def earn(
    d: Decision,
    source: str,
    reason: str,
    points: int,
    rules: RulesBook,
    now: datetime,
    *,
    key: str | None = None,
    explanation: str = "",
    **refs: str | None,
) -> None:
    lot = lot_id(d.ledger, reason, key or source)
    d.emit(
        PointsEarned.model_validate(
            {
                "customer_id": d.ledger.customer_id,
                "lot_id": lot,
                "points": points,
                "reason": reason,
                "source_event_id": source,
                "earned_at": now,
                "expires_at": expiry_of(rules.at(now), now),
                "explanation": explanation,
                **refs,
            }
        )
    )
    recover_owed(d, lot)


def earn_bonus(d: Decision, command: EarnBonus, rules: RulesBook, now: datetime) -> None:
    """A fixed bonus, once per source event and once per key (a survey, a referral)."""
    ledger = d.ledger
    if command.source_event_id in ledger.sources or command.points <= 0:
        return
    if command.key is not None and ledger.has_lot(lot_id(ledger, command.reason, command.key)):
        return
    if command.referred_customer_id == ledger.customer_id:
        return  # the referrer was merged into the customer it referred: no self-reward
    earn(
        d,
        command.source_event_id,
        command.reason,
        command.points,
        rules,
        now,
        key=command.key,
        explanation=command.explanation,
        referred_customer_id=command.referred_customer_id,
        survey_id=command.key if command.reason == "survey" else None,
    )


def survey_bonus(command: EarnSurveyBonus, rules: RulesBook) -> EarnBonus:
    # By the rules in force when the customer answered, as an order by its placed_at.
    return EarnBonus(
        command.source_event_id,
        "survey",
        rules.at(command.answered_at).survey_bonus,
        explanation=f"{command.kind} survey {command.survey_id} answered",
        key=command.survey_id,
    )


def recover_owed(d: Decision, lot_id: str) -> None:
    ledger = d.ledger
    remaining = ledger.lot(lot_id).remaining
    if ledger.owed > 0 and remaining > 0:
        d.emit(
            OwedPointsRecovered(
                customer_id=ledger.customer_id, lot_id=lot_id, points=min(ledger.owed, remaining)
            )
        )
