"""The PointsLedger's rules: ``decide(command, ledger, rules, now) -> events`` (pure).

Every decision first expires the lots that are due at ``now``, so expiry happens
exactly once per lot, in the service, whichever command or sweep comes first. A
decision works on a copy of the ledger, applying each event it decides as it goes,
so later steps (a tier change after an order, owed points recovered from a new lot)
see the earlier ones.
"""

from __future__ import annotations

import copy
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from libs.events.catalog import DomainEvent
from libs.events.catalog.loyalty import (
    CheckedIn,
    LedgerTransferredIn,
    LedgerTransferredOut,
    Lot,
    LotDraw,
    OwedPointsRecovered,
    PointsAdjusted,
    PointsClawedBack,
    PointsEarned,
    PointsExpired,
    PointsRedeemed,
    RedemptionCancelled,
    ReferralLapsed,
    ReferralQualified,
    ReferralRecorded,
    TierAtRisk,
    TierChanged,
    TierChangeReason,
    TierKept,
)
from services.loyalty.commands import (
    AdjustPoints,
    CancelRedemption,
    CheckIn,
    ClawBackCancellation,
    ClawBackRefund,
    EarnBonus,
    EarnForOrder,
    EarnSurveyBonus,
    ExpirePoints,
    LedgerCommand,
    RecordReferral,
    RedeemReward,
    TransferLedgerOut,
)
from services.loyalty.domain.errors import (
    AlreadyCheckedIn,
    IdempotencyKeyReused,
    InsufficientPoints,
    LedgerMoved,
    NothingToAdjust,
    OutOfStock,
    RedemptionNotFound,
    RewardNotFound,
    RewardUnavailable,
)
from services.loyalty.domain.ledger import Ledger, Reward, evolve, lots_of, oldest_first, orders_of
from services.loyalty.domain.rules import RulesBook, add_months, expiry_of, order_points, tier_for

# Points of a cancelled redemption whose lot expired meanwhile come back for this long.
RESTORED_LOT_DAYS = 30


# What a person asks of one customer's ledger: refused once the customer was merged away
# (other services' events about the duplicate follow it to the survivor instead).
CALLER_COMMANDS = (RedeemReward, CancelRedemption, AdjustPoints, CheckIn)


class Decision:
    """The events decided so far, applied to a working copy of the ledger."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = copy.deepcopy(ledger)
        self.events: list[DomainEvent] = []

    def emit(self, event: DomainEvent) -> None:
        self.events.append(event)
        self.ledger = evolve(self.ledger, event)


def decide(
    command: LedgerCommand,
    ledger: Ledger,
    rules: RulesBook,
    now: datetime,
    *,
    reward: Reward | None = None,
) -> list[DomainEvent]:
    if ledger.merged_into is not None and isinstance(command, CALLER_COMMANDS):
        raise LedgerMoved(ledger.customer_id, ledger.merged_into)
    d = Decision(ledger)
    expire_due(d, now)
    match command:
        case EarnForOrder():
            earn_for_order(d, command, rules, now)
        case ClawBackRefund() | ClawBackCancellation():
            claw_back(d, command, rules, now)
        case EarnBonus():
            earn_bonus(d, command, rules, now)
        case EarnSurveyBonus():
            earn_bonus(d, survey_bonus(command, rules), rules, now)
        case RecordReferral():
            record_referral(d, command, rules)
        case RedeemReward():
            redeem(d, command, reward, now)
        case CancelRedemption():
            cancel_redemption(d, command, now)
        case AdjustPoints():
            adjust(d, command, rules, now)
        case CheckIn():
            check_in(d, rules, now)
        case ExpirePoints():
            retier(d, rules, now, "window")
        case TransferLedgerOut():
            if command.source_event_id not in d.ledger.sources and d.ledger.merged_into is None:
                d.emit(transfer_out(d.ledger, command))
    return d.events


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


def lot_id(ledger: Ledger, kind: str, key: str) -> str:
    # Customer-qualified: lots of two merged customers never share an id.
    return f"{ledger.customer_id}/{kind}:{key}"


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


def recover_owed(d: Decision, lot_id: str) -> None:
    ledger = d.ledger
    remaining = ledger.lot(lot_id).remaining
    if ledger.owed > 0 and remaining > 0:
        d.emit(
            OwedPointsRecovered(
                customer_id=ledger.customer_id, lot_id=lot_id, points=min(ledger.owed, remaining)
            )
        )


def claw_back(
    d: Decision, command: ClawBackRefund | ClawBackCancellation, rules: RulesBook, now: datetime
) -> None:
    ledger = d.ledger
    order = ledger.orders.get(command.order_id)
    if command.source_event_id in ledger.sources or order is None or order.cancelled:
        return  # seen already, or an order that earned nothing here
    if isinstance(command, ClawBackRefund):
        refunded = min(order.refunded + max(command.amount, 0), order.amount) - order.refunded
        refund_id: str | None = command.refund_id
    else:
        refunded, refund_id = order.amount - order.refunded, None
    total_refunded = order.refunded + refunded
    # Cumulative, so partial refunds round once in total, never drifting: a full
    # refund takes back exactly what the order earned.
    due = (
        order.points
        if refund_id is None or total_refunded >= order.amount
        else order.points * total_refunded // order.amount
    )
    wanted = max(due - order.clawed, 0)
    own = ledger.lot(order.lot_id) if ledger.has_lot(order.lot_id) else None
    from_own = min(own.remaining, wanted) if own is not None else 0
    expired = own.expired_points - order.forgiven if own is not None else 0
    forgiven = min(wanted - from_own, max(expired, 0))
    draws = [LotDraw(lot_id=order.lot_id, points=from_own)] if from_own else []
    others, uncovered = oldest_first(ledger, wanted - from_own - forgiven, None, skip=order.lot_id)
    draws += others
    drawn = sum(draw.points for draw in draws)
    policy = rules.at(now).shortfall
    owed = uncovered if policy == "owed" else 0
    explanation = f"{refunded} of {order.amount} refunded: {due} of {order.points} points due back"
    if forgiven:
        explanation += f"; {forgiven} had already expired"
    if uncovered:
        explanation += (
            f"; {uncovered} already spent, recorded as owed"
            if owed
            else f"; {uncovered} already spent, the balance goes below zero"
        )
    d.emit(
        PointsClawedBack(
            customer_id=ledger.customer_id,
            order_id=order.order_id,
            source_event_id=command.source_event_id,
            refund_id=refund_id,
            refunded_amount=refunded,
            points=drawn + (0 if owed else uncovered),
            owed=owed,
            forgiven=forgiven,
            draws=draws,
            explanation=explanation,
        )
    )
    retier(d, rules, now, "refund" if refund_id is not None else "cancellation")


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


def redeem(d: Decision, command: RedeemReward, reward: Reward | None, now: datetime) -> None:
    ledger = d.ledger
    existing = ledger.keys.get(command.idempotency_key)
    if existing is not None:
        if ledger.redemptions[existing].reward_id != command.reward_id:
            raise IdempotencyKeyReused(command.idempotency_key, existing)
        return  # the same request again: the first answer stands
    definition = reward.definition if reward is not None else None
    if reward is None or definition is None:
        raise RewardNotFound(command.reward_id)
    if not definition.active:
        raise RewardUnavailable(command.reward_id, "is not active")
    if definition.valid_from is not None and now < definition.valid_from:
        raise RewardUnavailable(command.reward_id, "is not valid yet")
    if definition.valid_until is not None and now >= definition.valid_until:
        raise RewardUnavailable(command.reward_id, "is no longer valid")
    left = reward.stock_left
    if left is not None and left <= 0:
        raise OutOfStock(command.reward_id)
    available = ledger.available_at(now)
    if available < definition.cost:
        raise InsufficientPoints(ledger.customer_id, available, definition.cost)
    draws, _ = oldest_first(ledger, definition.cost, now)
    d.emit(
        PointsRedeemed(
            customer_id=ledger.customer_id,
            redemption_id=command.redemption_id,
            reward_id=command.reward_id,
            points=definition.cost,
            draws=draws,
            idempotency_key=command.idempotency_key,
            by=command.by,
        )
    )


def cancel_redemption(d: Decision, command: CancelRedemption, now: datetime) -> None:
    redemption = d.ledger.redemptions.get(command.redemption_id)
    if redemption is None:
        raise RedemptionNotFound(command.redemption_id)
    if redemption.cancelled:
        return
    restored: list[LotDraw] = []
    lapsed = 0
    for draw in redemption.draws:
        lot = d.ledger.lot(draw.lot_id)
        if not lot.expired and (lot.expires_at is None or lot.expires_at > now):
            restored.append(draw)
        else:
            lapsed += draw.points
    new_lot = None
    if lapsed:
        new_lot = Lot(
            lot_id=lot_id(d.ledger, "returned", command.redemption_id),
            points=lapsed,
            earned_at=now,
            expires_at=now + timedelta(days=RESTORED_LOT_DAYS),
        )
    d.emit(
        RedemptionCancelled(
            customer_id=d.ledger.customer_id,
            redemption_id=redemption.redemption_id,
            reward_id=redemption.reward_id,
            points=redemption.points,
            restored=restored,
            new_lot=new_lot,
            reason=command.reason,
            by=command.by,
        )
    )


def adjust(d: Decision, command: AdjustPoints, rules: RulesBook, now: datetime) -> None:
    ledger = d.ledger
    if command.adjustment_id in ledger.sources:
        return
    if command.points == 0:
        raise NothingToAdjust()
    draws: list[LotDraw] = []
    expires_at = None
    if command.points < 0:
        available = ledger.available_at(now)
        if available < -command.points:
            raise InsufficientPoints(ledger.customer_id, available, -command.points)
        draws, _ = oldest_first(ledger, -command.points, now)
    else:
        expires_at = expiry_of(rules.at(now), now)
    d.emit(
        PointsAdjusted(
            customer_id=ledger.customer_id,
            adjustment_id=command.adjustment_id,
            points=command.points,
            reason=command.reason,
            by=command.by,
            adjusted_at=now,
            draws=draws,
            expires_at=expires_at,
        )
    )


def check_in(d: Decision, rules: RulesBook, now: datetime) -> None:
    current = rules.at(now)
    day = now.astimezone(ZoneInfo(current.time_zone)).date()
    last = d.ledger.last_check_in
    if last is not None and last >= day:
        raise AlreadyCheckedIn(day)
    streak = d.ledger.streak + 1 if last == day - timedelta(days=1) else 1
    d.emit(CheckedIn(customer_id=d.ledger.customer_id, day=day, streak=streak))
    if current.check_in_points:
        earn(
            d,
            f"check-in:{d.ledger.customer_id}:{day}",
            "check_in",
            current.check_in_points,
            rules,
            now,
            key=day.isoformat(),
            explanation=f"check-in, day {streak} in a row",
        )
    for bonus in current.streak_bonuses:
        if streak % bonus.days == 0:
            earn(
                d,
                f"streak:{d.ledger.customer_id}:{day}:{bonus.days}",
                "streak",
                bonus.points,
                rules,
                now,
                key=f"{day}:{bonus.days}",
                explanation=f"{streak} check-ins in a row",
            )


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
