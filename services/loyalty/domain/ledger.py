"""The PointsLedger of one customer: its state is a fold of its events (pure).

The balance is the points left in the customer's lots minus any deficit (points a
clawback took beyond what was left, under the ``negative_balance`` policy). New
points pay a deficit first, so a deficit and points in lots never coexist.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime

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
    Referral,
    ReferralLapsed,
    ReferralQualified,
    ReferralRecorded,
    RewardDefined,
    RewardStockReturned,
    RewardStockTaken,
    TierAtRisk,
    TierChanged,
    TierKept,
    TransferredOrder,
)


@dataclass(slots=True)
class LotState:
    lot_id: str
    earned_at: datetime
    expires_at: datetime | None
    remaining: int
    expired_points: int = 0
    expired: bool = False

    def spendable_at(self, now: datetime) -> bool:
        return self.remaining > 0 and (self.expires_at is None or self.expires_at > now)


@dataclass(slots=True)
class OrderState:
    order_id: str
    placed_at: datetime
    amount: int
    points: int
    lot_id: str
    refunded: int = 0
    # Points of this order a clawback has dealt with (taken, owed or forgiven).
    clawed: int = 0
    forgiven: int = 0
    cancelled: bool = False

    @property
    def net_amount(self) -> int:
        return 0 if self.cancelled else max(self.amount - self.refunded, 0)


@dataclass(slots=True)
class RedemptionState:
    redemption_id: str
    reward_id: str
    idempotency_key: str
    points: int
    draws: list[LotDraw]
    cancelled: bool = False


@dataclass(slots=True)
class Ledger:
    customer_id: str
    version: int = 0
    lots: list[LotState] = field(default_factory=list)
    deficit: int = 0
    owed: int = 0
    orders: dict[str, OrderState] = field(default_factory=dict)
    # Every source event (and command id) that has made a line: never a second one.
    sources: set[str] = field(default_factory=set)
    redemptions: dict[str, RedemptionState] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    tier: str | None = None
    # While below the tier's threshold in a grace period: when the tier falls.
    downgrade_at: datetime | None = None
    last_check_in: date | None = None
    streak: int = 0
    merged_into: str | None = None
    # The first order applied to this ledger (in the order the pipeline published
    # them), and the referral its first order settles (decision 0040).
    first_order: tuple[str, datetime] | None = None
    referral: Referral | None = None
    referral_settled: bool = False

    @property
    def balance(self) -> int:
        return sum(lot.remaining for lot in self.lots) - self.deficit

    def available_at(self, now: datetime) -> int:
        """What may be spent now: lots past their expiry are not, even before they expire."""
        return sum(lot.remaining for lot in self.lots if lot.spendable_at(now)) - self.deficit

    def lot(self, lot_id: str) -> LotState:
        return next(lot for lot in self.lots if lot.lot_id == lot_id)

    def has_lot(self, lot_id: str) -> bool:
        return any(lot.lot_id == lot_id for lot in self.lots)


def fold(customer_id: str, events: Iterable[DomainEvent]) -> Ledger:
    ledger = Ledger(customer_id)
    for event in events:
        ledger = evolve(ledger, event)
    return ledger


def evolve(ledger: Ledger, event: DomainEvent) -> Ledger:
    """Apply one event. Folds mutate the fresh state they build; nothing else holds it."""
    ledger.version += 1
    match event:
        case PointsEarned():
            _earned(ledger, event)
        case PointsClawedBack():
            _clawed_back(ledger, event)
        case OwedPointsRecovered():
            ledger.lot(event.lot_id).remaining -= event.points
            ledger.owed -= event.points
        case PointsRedeemed():
            _redeemed(ledger, event)
        case RedemptionCancelled():
            _redemption_cancelled(ledger, event)
        case PointsExpired():
            _expired(ledger, event)
        case PointsAdjusted():
            _adjusted(ledger, event)
        case TierChanged():
            ledger.tier = event.to_tier
            ledger.downgrade_at = None
        case TierAtRisk():
            ledger.downgrade_at = event.downgrade_at
        case TierKept():
            ledger.downgrade_at = None
        case CheckedIn():
            ledger.last_check_in = event.day
            ledger.streak = event.streak
        case ReferralRecorded():
            ledger.sources.add(event.source_event_id)
            ledger.referral = Referral(referrer_id=event.referrer_id, referred_at=event.referred_at)
        case ReferralQualified() | ReferralLapsed():
            ledger.referral_settled = True
        case LedgerTransferredOut():
            _transferred_out(ledger, event)
        case LedgerTransferredIn():
            _transferred_in(ledger, event)
    return ledger


# --- one applier per event that changes more than a field or two ---------------------


def _earned(ledger: Ledger, event: PointsEarned) -> None:
    ledger.sources.add(event.source_event_id)
    _credit(ledger, event.lot_id, event.points, event.earned_at, event.expires_at)
    if event.order_id is not None:
        if ledger.first_order is None:
            ledger.first_order = (event.order_id, event.earned_at)
        ledger.orders[event.order_id] = OrderState(
            event.order_id,
            event.earned_at,
            event.order_amount or 0,
            event.points,
            event.lot_id,
        )


def _clawed_back(ledger: Ledger, event: PointsClawedBack) -> None:
    ledger.sources.add(event.source_event_id)
    _take(ledger, event.draws)
    ledger.deficit += event.points - sum(d.points for d in event.draws)
    ledger.owed += event.owed
    order = ledger.orders[event.order_id]
    order.refunded += event.refunded_amount
    order.clawed += event.points + event.owed + event.forgiven
    order.forgiven += event.forgiven
    if event.refund_id is None:
        order.cancelled = True


def _redeemed(ledger: Ledger, event: PointsRedeemed) -> None:
    _take(ledger, event.draws)
    ledger.redemptions[event.redemption_id] = RedemptionState(
        event.redemption_id,
        event.reward_id,
        event.idempotency_key,
        event.points,
        list(event.draws),
    )
    ledger.keys[event.idempotency_key] = event.redemption_id


def _redemption_cancelled(ledger: Ledger, event: RedemptionCancelled) -> None:
    for draw in event.restored:
        _restore(ledger, draw)
    if event.new_lot is not None:
        back = event.new_lot
        _credit(ledger, back.lot_id, back.points, back.earned_at, back.expires_at)
    ledger.redemptions[event.redemption_id].cancelled = True


def _expired(ledger: Ledger, event: PointsExpired) -> None:
    expiring = ledger.lot(event.lot_id)
    expiring.remaining -= event.points
    expiring.expired_points += event.points
    expiring.expired = True


def _adjusted(ledger: Ledger, event: PointsAdjusted) -> None:
    ledger.sources.add(event.adjustment_id)
    if event.points > 0:
        _credit(ledger, event.adjustment_id, event.points, event.adjusted_at, event.expires_at)
    else:
        _take(ledger, event.draws)


def _transferred_out(ledger: Ledger, event: LedgerTransferredOut) -> None:
    ledger.sources.add(event.source_event_id)
    ledger.lots = [lot for lot in ledger.lots if lot.remaining == 0]
    ledger.deficit = ledger.owed = 0
    ledger.merged_into = event.survivor_id


def _transferred_in(ledger: Ledger, event: LedgerTransferredIn) -> None:
    ledger.sources.add(event.source_event_id)
    for moved in event.lots:
        _credit(ledger, moved.lot_id, moved.points, moved.earned_at, moved.expires_at)
    # The duplicate's deficit is paid from the survivor's oldest points first.
    draws, uncovered = oldest_first(ledger, event.deficit, None)
    _take(ledger, draws)
    ledger.deficit += uncovered
    ledger.owed += event.owed
    ledger.sources.update(event.sources)
    for taken in event.orders:
        ledger.orders[taken.order_id] = OrderState(**taken.model_dump())
    if ledger.first_order is None and event.orders:
        # The same person ordered under the duplicate's id: that was a first order.
        first = min(event.orders, key=lambda o: o.placed_at)
        ledger.first_order = (first.order_id, first.placed_at)
    if ledger.referral is None and event.referral is not None:
        ledger.referral = event.referral


def _credit(
    ledger: Ledger, lot_id: str, points: int, earned_at: datetime, expires_at: datetime | None
) -> None:
    paid = min(ledger.deficit, points)
    ledger.deficit -= paid
    lot = LotState(lot_id, earned_at, expires_at, points - paid)
    # Oldest first by when the points were earned; a historic order is an old lot.
    index = len(ledger.lots)
    while index > 0 and ledger.lots[index - 1].earned_at > earned_at:
        index -= 1
    ledger.lots.insert(index, lot)


def _take(ledger: Ledger, draws: Iterable[LotDraw]) -> None:
    for draw in draws:
        ledger.lot(draw.lot_id).remaining -= draw.points


def _restore(ledger: Ledger, draw: LotDraw) -> None:
    paid = min(ledger.deficit, draw.points)
    ledger.deficit -= paid
    ledger.lot(draw.lot_id).remaining += draw.points - paid


def oldest_first(
    ledger: Ledger, points: int, now: datetime | None, *, skip: str | None = None
) -> tuple[list[LotDraw], int]:
    """Draws for ``points`` from the oldest spendable lots; and what they could not cover."""
    draws: list[LotDraw] = []
    left = points
    for lot in ledger.lots:
        if left <= 0:
            break
        if lot.lot_id == skip or lot.remaining <= 0:
            continue
        if now is not None and not lot.spendable_at(now):
            continue
        taken = min(lot.remaining, left)
        draws.append(LotDraw(lot_id=lot.lot_id, points=taken))
        left -= taken
    return draws, left


def orders_of(ledger: Ledger) -> list[TransferredOrder]:
    return [
        TransferredOrder(
            order_id=o.order_id,
            placed_at=o.placed_at,
            amount=o.amount,
            points=o.points,
            lot_id=o.lot_id,
            refunded=o.refunded,
            clawed=o.clawed,
            forgiven=o.forgiven,
            cancelled=o.cancelled,
        )
        for o in ledger.orders.values()
    ]


def lots_of(ledger: Ledger) -> list[Lot]:
    return [
        Lot(
            lot_id=lot.lot_id,
            points=lot.remaining,
            earned_at=lot.earned_at,
            expires_at=lot.expires_at,
        )
        for lot in ledger.lots
        if lot.remaining > 0
    ]


# --- a reward and its stock ----------------------------------------------------------


@dataclass(slots=True)
class Reward:
    definition: RewardDefined | None = None
    taken: int = 0
    version: int = 0
    open_redemptions: set[str] = field(default_factory=set)

    @property
    def stock_left(self) -> int | None:
        if self.definition is None or self.definition.stock is None:
            return None
        return self.definition.stock - self.taken


def fold_reward(events: Iterable[DomainEvent]) -> Reward:
    reward = Reward()
    for event in events:
        reward.version += 1
        match event:
            case RewardDefined():
                reward.definition = event
            case RewardStockTaken():
                reward.taken += 1
                reward.open_redemptions.add(event.redemption_id)
            case RewardStockReturned():
                reward.taken -= 1
                reward.open_redemptions.discard(event.redemption_id)
    return reward


# --- ledger lines ---------------------------------------------------------------------

LINE_SIGNS: dict[type[DomainEvent], int] = {
    PointsEarned: 1,
    PointsClawedBack: -1,
    OwedPointsRecovered: -1,
    PointsRedeemed: -1,
    RedemptionCancelled: 1,
    PointsExpired: -1,
    PointsAdjusted: 1,
    LedgerTransferredOut: -1,
    LedgerTransferredIn: 1,
}


def line_points(event: DomainEvent) -> int | None:
    """What the event adds to the balance (negative: takes), or None if it is no line."""
    sign = LINE_SIGNS.get(type(event))
    if sign is None:
        return None
    points: int = getattr(event, "points")  # noqa: B009 - every line type has points
    return sign * points
