"""Redemptions: a reward bought with points (oldest lots first), and cancelled."""

from __future__ import annotations

from datetime import datetime, timedelta

from libs.events.catalog.loyalty import Lot, LotDraw, PointsRedeemed, RedemptionCancelled
from services.loyalty.commands import CancelRedemption, RedeemReward
from services.loyalty.domain.decisions.decision import Decision, lot_id
from services.loyalty.domain.errors import (
    IdempotencyKeyReused,
    InsufficientPoints,
    OutOfStock,
    RedemptionNotFound,
    RewardNotFound,
    RewardUnavailable,
)
from services.loyalty.domain.ledger import Reward, oldest_first

# Points of a cancelled redemption whose lot expired meanwhile come back for this long.
RESTORED_LOT_DAYS = 30


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
