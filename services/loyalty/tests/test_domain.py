"""The PointsLedger's rules: given its events, when a command, then events or an error."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from libs.events.catalog import DomainEvent
from libs.events.catalog.loyalty import (
    Campaign,
    CheckedIn,
    LoyaltyRulesSet,
    OwedPointsRecovered,
    PointsClawedBack,
    PointsEarned,
    PointsExpired,
    PointsRedeemed,
    ProgramRules,
    RewardDefined,
    RewardStockTaken,
    StreakBonus,
    TierAtRisk,
    TierChanged,
    TierKept,
    TierRule,
)
from services.loyalty.commands import (
    AdjustPoints,
    CancelRedemption,
    CheckIn,
    ClawBackCancellation,
    ClawBackRefund,
    EarnForOrder,
    ExpirePoints,
    LedgerCommand,
    RedeemReward,
    TransferLedgerOut,
)
from services.loyalty.domain.decisions import decide, transfer_in
from services.loyalty.domain.errors import (
    AlreadyCheckedIn,
    IdempotencyKeyReused,
    InsufficientPoints,
    LedgerMoved,
    OutOfStock,
    RewardUnavailable,
)
from services.loyalty.domain.ledger import Ledger, Reward, fold, fold_reward, line_points
from services.loyalty.domain.rules import RulesBook

T0 = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)
CUSTOMER = "c-1"


def book(**changes: object) -> RulesBook:
    rules = ProgramRules.model_validate({**ProgramRules().model_dump(), **changes})
    return RulesBook.of(
        [LoyaltyRulesSet(rules=rules, effective_from=T0 - timedelta(days=3650), by="m")]
    )


RULES = book()


class Given:
    """A ledger built by running commands, as the service would."""

    def __init__(self, rules: RulesBook = RULES) -> None:
        self.rules = rules
        self.events: list[DomainEvent] = []

    @property
    def ledger(self) -> Ledger:
        return fold(CUSTOMER, self.events)

    def when(
        self, command: LedgerCommand, now: datetime = T0, reward: Reward | None = None
    ) -> list[DomainEvent]:
        new = decide(command, self.ledger, self.rules, now, reward=reward)
        self.events += new
        return new

    def balance(self) -> int:
        return self.ledger.balance


def order(n: int, amount: int, at: datetime = T0, currency: str = "CNY") -> EarnForOrder:
    return EarnForOrder(f"evt-order-{n}", f"o-{n}", amount, currency, at)


def refund(n: int, amount: int, k: int = 1) -> ClawBackRefund:
    return ClawBackRefund(f"evt-refund-{n}-{k}", f"o-{n}", f"r-{n}-{k}", amount)


def of_type(events: Sequence[DomainEvent], kind: type[DomainEvent]) -> list[DomainEvent]:
    return [e for e in events if isinstance(e, kind)]


def reward(cost: int, stock: int | None = None, **terms: object) -> Reward:
    return fold_reward(
        [
            RewardDefined.model_validate(
                {
                    "reward_id": "mug",
                    "name": "Mug",
                    "cost": cost,
                    "stock": stock,
                    "by": "m",
                    **terms,
                }
            )
        ]
    )


# --- earning ---------------------------------------------------------------------------


def test_an_order_earns_points_per_unit_of_its_amount_rounded_down() -> None:
    given = Given()
    (earned,) = of_type(given.when(order(1, 12_399)), PointsEarned)
    assert isinstance(earned, PointsEarned)
    assert earned.points == 123
    assert earned.source_event_id == "evt-order-1"
    assert earned.expires_at == datetime(2028, 1, 10, 12, 0, tzinfo=UTC)


def test_the_same_order_event_applied_twice_earns_once() -> None:
    given = Given()
    given.when(order(1, 10_000))
    assert given.when(order(1, 10_000)) == []
    # The same order under another event id (published again) earns nothing either.
    assert given.when(EarnForOrder("evt-other", "o-1", 10_000, "CNY", T0)) == []
    assert given.balance() == 100


def test_a_gold_customer_earns_with_the_gold_multiplier() -> None:
    given = Given()
    given.when(order(1, 2_000_000))  # reaches gold (threshold 20,000.00)
    (earned,) = of_type(given.when(order(2, 10_000, T0 + timedelta(days=1))), PointsEarned)
    assert isinstance(earned, PointsEarned)
    assert earned.multiplier == Decimal("1.5")
    assert earned.points == 150


def test_a_historic_order_earns_by_the_rules_of_its_time_and_expires_at_once_if_due() -> None:
    rules = RulesBook.of(
        [
            LoyaltyRulesSet(
                rules=ProgramRules(points_per_unit=Decimal(2)),
                effective_from=T0 - timedelta(days=1000),
                by="m",
            ),
            LoyaltyRulesSet(
                rules=ProgramRules(points_per_unit=Decimal(1)),
                effective_from=T0 - timedelta(days=10),
                by="m",
            ),
        ]
    )
    given = Given(rules)
    events = given.when(order(1, 10_000, T0 - timedelta(days=900)))
    earned = of_type(events, PointsEarned)[0]
    assert isinstance(earned, PointsEarned) and earned.points == 200
    expired = of_type(events, PointsExpired)
    assert [e.points for e in expired if isinstance(e, PointsExpired)] == [200]
    assert given.balance() == 0


def test_an_order_in_another_currency_earns_nothing_and_says_why() -> None:
    (earned,) = of_type(Given().when(order(1, 10_000, currency="USD")), PointsEarned)
    assert isinstance(earned, PointsEarned)
    assert earned.points == 0 and "USD" in earned.explanation


# --- refunds -----------------------------------------------------------------------------


def test_partial_refunds_claw_back_in_proportion_and_a_full_refund_all_of_it() -> None:
    given = Given()
    given.when(order(1, 10_000))  # 100 points
    (first,) = of_type(given.when(refund(1, 3_333, 1)), PointsClawedBack)
    assert isinstance(first, PointsClawedBack) and first.points == 33
    given.when(refund(1, 3_333, 2))
    given.when(refund(1, 3_334, 3))
    assert given.balance() == 0
    assert given.when(refund(1, 3_334, 3)) == []  # redelivered


def test_a_refund_of_spent_points_takes_the_balance_below_zero_and_says_so() -> None:
    given = Given()
    given.when(order(1, 10_000))
    given.when(RedeemReward("rd-1", "k-1", "mug", "u"), reward=reward(80))
    (clawed,) = of_type(given.when(refund(1, 10_000)), PointsClawedBack)
    assert isinstance(clawed, PointsClawedBack)
    assert clawed.points == 100 and clawed.owed == 0
    assert "80 already spent" in clawed.explanation
    assert given.balance() == -80
    given.when(order(2, 5_000))  # new points pay the deficit first
    assert given.balance() == -30


def test_under_the_owed_policy_the_shortfall_is_recorded_and_recovered_from_later_points() -> None:
    given = Given(book(shortfall="owed"))
    given.when(order(1, 10_000))
    given.when(RedeemReward("rd-1", "k-1", "mug", "u"), reward=reward(80))
    (clawed,) = of_type(given.when(refund(1, 10_000)), PointsClawedBack)
    assert isinstance(clawed, PointsClawedBack)
    assert (clawed.points, clawed.owed) == (20, 80)
    assert given.balance() == 0 and given.ledger.owed == 80
    (recovered,) = of_type(given.when(order(2, 5_000)), OwedPointsRecovered)
    assert isinstance(recovered, OwedPointsRecovered) and recovered.points == 50
    assert given.balance() == 0 and given.ledger.owed == 30


def test_a_cancelled_order_takes_back_all_its_points_once() -> None:
    given = Given()
    given.when(order(1, 10_000))
    given.when(refund(1, 5_000))
    given.when(ClawBackCancellation("evt-cancel-1", "o-1"))
    assert given.balance() == 0
    assert given.when(ClawBackCancellation("evt-cancel-2", "o-1")) == []


def test_a_refund_takes_the_customer_below_the_tier_threshold_and_the_tier_falls() -> None:
    given = Given()
    changes = of_type(given.when(order(1, 600_000)), TierChanged)
    assert [(e.from_tier, e.to_tier) for e in changes if isinstance(e, TierChanged)] == [
        ("普通会员", "silver")
    ]
    changes = of_type(given.when(refund(1, 200_000)), TierChanged)
    assert [(e.to_tier, e.reason) for e in changes if isinstance(e, TierChanged)] == [
        ("普通会员", "refund")
    ]


def test_tiers_fall_when_orders_leave_the_rolling_window() -> None:
    given = Given()
    given.when(order(1, 600_000))
    assert given.when(ExpirePoints(), T0 + timedelta(days=30)) == []
    (change,) = of_type(given.when(ExpirePoints(), T0 + timedelta(days=370)), TierChanged)
    assert isinstance(change, TierChanged) and change.reason == "window"


# --- spending and expiry ------------------------------------------------------------------


def test_spending_consumes_the_oldest_lots_first() -> None:
    given = Given()
    given.when(order(1, 5_000, T0))
    given.when(order(2, 5_000, T0 + timedelta(days=1)))
    given.when(order(3, 5_000, T0 - timedelta(days=1)))  # migrated: the oldest lot
    (redeemed,) = given.when(
        RedeemReward("rd", "k", "mug", "u"), T0 + timedelta(days=2), reward=reward(70)
    )
    assert isinstance(redeemed, PointsRedeemed)
    assert [(d.lot_id, d.points) for d in redeemed.draws] == [
        ("c-1/order:o-3", 50),
        ("c-1/order:o-1", 20),
    ]


def test_points_expire_n_months_after_earning_oldest_first_once_per_lot() -> None:
    given = Given(book(expiry_months=6))
    given.when(order(1, 5_000, T0))
    given.when(order(2, 7_000, T0 + timedelta(days=40)))
    later = T0 + timedelta(days=365)
    expired = given.when(ExpirePoints(), later)
    assert [(e.lot_id, e.points) for e in expired if isinstance(e, PointsExpired)] == [
        ("c-1/order:o-1", 50),
        ("c-1/order:o-2", 70),
    ]
    assert given.when(ExpirePoints(), later) == []
    assert given.balance() == 0


def test_points_past_their_expiry_cannot_be_spent_even_before_the_sweep() -> None:
    given = Given(book(expiry_months=1))
    given.when(order(1, 10_000))
    with pytest.raises(InsufficientPoints):
        given.when(RedeemReward("rd", "k", "mug", "u"), T0 + timedelta(days=40), reward=reward(50))


# --- redemptions --------------------------------------------------------------------------


def test_points_cannot_be_redeemed_beyond_the_balance() -> None:
    given = Given()
    given.when(order(1, 10_000))
    with pytest.raises(InsufficientPoints):
        given.when(RedeemReward("rd", "k", "mug", "u"), reward=reward(150))


def test_one_idempotency_key_redeems_once() -> None:
    given = Given()
    given.when(order(1, 10_000))
    given.when(RedeemReward("rd-1", "k", "mug", "u"), reward=reward(30))
    assert given.when(RedeemReward("rd-2", "k", "mug", "u"), reward=reward(30)) == []
    with pytest.raises(IdempotencyKeyReused):
        given.when(RedeemReward("rd-3", "k", "bag", "u"), reward=reward(30))
    assert given.balance() == 70


def test_a_reward_out_of_stock_or_outside_its_validity_cannot_be_redeemed() -> None:
    given = Given()
    given.when(order(1, 10_000))
    sold_out = reward(10, stock=1)
    sold_out.taken = 1
    with pytest.raises(OutOfStock):
        given.when(RedeemReward("rd", "k", "mug", "u"), reward=sold_out)
    with pytest.raises(RewardUnavailable):
        given.when(
            RedeemReward("rd", "k", "mug", "u"),
            reward=reward(10, valid_until=T0 - timedelta(days=1)),
        )


def test_a_cancelled_redemption_gives_the_points_back_once() -> None:
    given = Given()
    given.when(order(1, 10_000))
    given.when(RedeemReward("rd", "k", "mug", "u"), reward=reward(60))
    given.when(CancelRedemption("rd", "out of stock", "u"))
    assert given.balance() == 100
    assert given.when(CancelRedemption("rd", "again", "u")) == []
    assert given.ledger.lot("c-1/order:o-1").remaining == 100


def test_a_stock_counter_follows_taken_stock() -> None:
    r = fold_reward(
        [
            RewardDefined(reward_id="mug", name="Mug", cost=1, stock=2, by="m"),
            RewardStockTaken(reward_id="mug", redemption_id="rd", customer_id=CUSTOMER),
        ]
    )
    assert r.stock_left == 1


# --- adjustments and check-ins ------------------------------------------------------------


def test_a_manager_may_adjust_but_never_below_zero() -> None:
    given = Given()
    given.when(AdjustPoints("adj-1", 40, "goodwill", "m"))
    assert given.when(AdjustPoints("adj-1", 40, "goodwill", "m")) == []
    with pytest.raises(InsufficientPoints):
        given.when(AdjustPoints("adj-2", -41, "typo", "m"))
    given.when(AdjustPoints("adj-3", -40, "typo", "m"))
    assert given.balance() == 0


def test_check_in_once_per_day_in_the_tenants_time_zone_with_streak_bonuses() -> None:
    given = Given(book(check_in_points=2, streak_bonuses=[StreakBonus(days=3, points=10)]))
    morning_in_shanghai = datetime(2026, 1, 10, 17, 0, tzinfo=UTC)  # 01:00 on the 11th there
    given.when(CheckIn(), datetime(2026, 1, 10, 15, 0, tzinfo=UTC))  # 23:00 on the 10th
    given.when(CheckIn(), morning_in_shanghai)
    with pytest.raises(AlreadyCheckedIn):
        given.when(CheckIn(), morning_in_shanghai + timedelta(hours=10))
    events = given.when(CheckIn(), morning_in_shanghai + timedelta(days=1))
    assert [e.streak for e in events if isinstance(e, CheckedIn)] == [3]
    assert given.balance() == 2 + 2 + 2 + 10
    events = given.when(CheckIn(), morning_in_shanghai + timedelta(days=3))  # a day missed
    assert [e.streak for e in events if isinstance(e, CheckedIn)] == [1]


# --- merges and lines ---------------------------------------------------------------------


def test_a_merged_duplicates_points_and_orders_move_to_the_survivor() -> None:
    duplicate = Given()
    duplicate.when(order(1, 10_000))
    out = duplicate.when(TransferLedgerOut("evt-merge", "c-2"))
    moved_in = transfer_in(duplicate.ledger, Ledger("c-2"), out[0], RulesBook(), T0)  # type: ignore[arg-type]
    survivor = fold("c-2", moved_in)
    assert survivor.balance == 100 and duplicate.balance() == 0
    assert "evt-order-1" in survivor.sources  # a redelivered order earns nothing there
    refunded = decide(refund(1, 10_000), survivor, RULES, T0)
    assert fold("c-2", moved_in + refunded).balance == 0
    with pytest.raises(LedgerMoved):
        duplicate.when(AdjustPoints("adj", 10, "goodwill", "m"))


def test_the_balance_is_the_sum_of_the_lines() -> None:
    given = Given()
    given.when(order(1, 10_000))
    given.when(RedeemReward("rd", "k", "mug", "u"), reward=reward(60))
    given.when(refund(1, 10_000))
    given.when(AdjustPoints("adj", 5, "sorry", "m"))
    lines = [p for p in map(line_points, given.events) if p is not None]
    assert sum(lines) == given.balance() == -55


def test_tier_thresholds_are_the_tenants() -> None:
    given = Given(
        book(tiers=[TierRule(name="member", threshold=0), TierRule(name="vip", threshold=100)])
    )
    changes = of_type(given.when(order(1, 100)), TierChanged)
    assert [e.to_tier for e in changes if isinstance(e, TierChanged)] == ["vip"]


def test_a_campaign_multiplies_and_adds_points_only_inside_its_window() -> None:
    campaign = Campaign(
        campaign_id="double-11",
        name="双十一",
        starts_at=T0,
        ends_at=T0 + timedelta(days=1),
        multiplier=Decimal(2),
        bonus_points=5,
    )
    given = Given(book(campaigns=[campaign]))
    (inside,) = of_type(given.when(order(1, 10_000, T0 + timedelta(hours=1))), PointsEarned)
    (outside,) = of_type(given.when(order(2, 10_000, T0 + timedelta(days=2))), PointsEarned)
    assert isinstance(inside, PointsEarned) and isinstance(outside, PointsEarned)
    assert (inside.points, outside.points) == (205, 100)
    assert "double-11" in inside.explanation


def test_with_a_grace_period_a_tier_falls_only_when_it_ends_and_not_if_regained() -> None:
    given = Given(book(downgrade_grace_days=30))
    given.when(order(1, 600_000))
    (at_risk,) = of_type(given.when(refund(1, 300_000)), TierAtRisk)
    assert isinstance(at_risk, TierAtRisk)
    assert at_risk.downgrade_at == T0 + timedelta(days=30)
    assert given.ledger.tier == "silver"
    # Still silver in the grace period: an order earns silver's multiplier.
    (earned,) = of_type(
        given.when(order(2, 10_000, T0 + timedelta(days=1)), T0 + timedelta(days=1)), PointsEarned
    )
    assert isinstance(earned, PointsEarned) and earned.multiplier == Decimal("1.2")
    assert given.when(ExpirePoints(), T0 + timedelta(days=29)) == []
    (fell,) = of_type(given.when(ExpirePoints(), T0 + timedelta(days=31)), TierChanged)
    assert isinstance(fell, TierChanged) and fell.to_tier == "普通会员"

    regained = Given(book(downgrade_grace_days=30))
    regained.when(order(1, 600_000))
    regained.when(refund(1, 300_000))
    kept = regained.when(order(3, 300_000, T0 + timedelta(days=2)), T0 + timedelta(days=2))
    assert of_type(kept, TierKept) and not of_type(kept, TierChanged)
    assert regained.when(ExpirePoints(), T0 + timedelta(days=40)) == []
