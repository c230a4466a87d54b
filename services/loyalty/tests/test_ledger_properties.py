"""Properties of the PointsLedger for any history of orders, refunds, redemptions,
expiries, survey and referral bonuses, and redeliveries (hypothesis)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from libs.events.catalog import DomainEvent
from libs.events.catalog.loyalty import (
    LoyaltyRulesSet,
    PointsEarned,
    PointsRedeemed,
    ProgramRules,
    ReferralLapsed,
    ReferralQualified,
    RewardDefined,
)
from libs.platform.errors import DomainError
from services.loyalty.commands import (
    AdjustPoints,
    CancelRedemption,
    ClawBackCancellation,
    ClawBackRefund,
    EarnForOrder,
    EarnSurveyBonus,
    ExpirePoints,
    LedgerCommand,
    RecordReferral,
    RedeemReward,
)
from services.loyalty.domain.decisions import decide, referral_bonus
from services.loyalty.domain.ledger import Reward, fold, line_points
from services.loyalty.domain.rules import RulesBook

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def rules_for(policy: str) -> RulesBook:
    rules = ProgramRules(
        expiry_months=3,
        shortfall=policy,  # type: ignore[arg-type]
        survey_bonus=15,
        referral_bonus=70,
    )
    return RulesBook.of([LoyaltyRulesSet(rules=rules, effective_from=T0, by="m")])


@dataclass(frozen=True)
class Step:
    command: LedgerCommand
    days: int  # after T0: the clock only moves forward
    cost: int = 0


orders = st.builds(
    lambda n, amount, back: Step(
        EarnForOrder(f"e-o-{n}", f"o-{n}", amount, "CNY", T0 + timedelta(days=back)), 0
    ),
    st.integers(0, 6),
    st.integers(0, 50_000),
    st.integers(-200, 0),
)
refunds = st.builds(
    lambda n, k, amount: Step(ClawBackRefund(f"e-r-{n}-{k}", f"o-{n}", f"r-{n}-{k}", amount), 0),
    st.integers(0, 6),
    st.integers(0, 3),
    st.integers(0, 50_000),
)
cancellations = st.builds(
    lambda n: Step(ClawBackCancellation(f"e-c-{n}", f"o-{n}"), 0), st.integers(0, 6)
)
redemptions = st.builds(
    lambda k, cost: Step(RedeemReward(f"rd-{k}", f"key-{k}", "gift", "u"), 0, cost),
    st.integers(0, 8),
    st.integers(1, 400),
)
cancelled_redemptions = st.builds(
    lambda k: Step(CancelRedemption(f"rd-{k}", "", "u"), 0), st.integers(0, 8)
)
adjustments = st.builds(
    lambda k, points: Step(AdjustPoints(f"adj-{k}", points, "", "m"), 0),
    st.integers(0, 4),
    st.integers(-300, 300),
)
expiries = st.just(Step(ExpirePoints(), 0))
# The same survey may come again under another event id (a republished topic).
surveys = st.builds(
    lambda n, e: Step(EarnSurveyBonus(f"e-s-{n}-{e}", f"sv-{n}", "NPS", T0), 0),
    st.integers(0, 3),
    st.integers(0, 1),
)
referrals = st.builds(
    lambda k, back: Step(RecordReferral(f"e-ref-{k}", f"friend-{k}", T0 + timedelta(days=back)), 0),
    st.integers(0, 2),
    st.integers(-100, 0),
)
# This ledger as a referrer: the bonus of a referred customer's first order.
referral_bonuses = st.builds(
    lambda n: Step(
        referral_bonus(
            ReferralQualified(
                customer_id=f"new-{n}",
                referrer_id="c",
                order_id="o-1",
                points=70,
                source_event_id=f"e-first-{n}",
            )
        ),
        0,
    ),
    st.integers(0, 3),
)
steps = st.lists(
    st.tuples(
        st.one_of(
            orders,
            refunds,
            cancellations,
            redemptions,
            cancelled_redemptions,
            adjustments,
            expiries,
            surveys,
            referrals,
            referral_bonuses,
        ),
        st.integers(0, 60),  # days the clock moves before the step
        st.booleans(),  # delivered twice
    ),
    max_size=40,
)


def run(history: list[tuple[Step, int, bool]], rules: RulesBook) -> list[DomainEvent]:
    events: list[DomainEvent] = []
    now = T0
    for step, wait, twice in history:
        now += timedelta(days=wait)
        for _ in range(2 if twice else 1):
            ledger = fold("c", events)
            # Only a redemption names the reward: its cost (a reward costs at least 1).
            cost = max(step.cost, 1)
            reward = Reward(RewardDefined(reward_id="gift", name="gift", cost=cost, by="m"))
            try:
                new = decide(step.command, ledger, rules, now, reward=reward)
            except DomainError:
                continue
            after = fold("c", events + new)
            if any(isinstance(e, PointsRedeemed) for e in new):
                # A redemption never takes the balance below zero.
                assert after.balance >= 0
            events += new
    return events


@settings(max_examples=300, deadline=None)
@given(steps, st.sampled_from(["negative_balance", "owed"]))
def test_the_balance_is_the_sum_of_the_ledger_and_replays_give_the_same_ledger(
    history: list[tuple[Step, int, bool]], policy: str
) -> None:
    rules = rules_for(policy)
    events = run(history, rules)
    ledger = fold("c", events)
    lines = [p for p in map(line_points, events) if p is not None]
    assert sum(lines) == ledger.balance
    assert all(lot.remaining >= 0 for lot in ledger.lots)
    assert ledger.owed >= 0 and ledger.deficit >= 0
    if policy == "owed":
        assert ledger.balance >= 0
    # The same history again (a replay, a rebuild) decides exactly the same ledger.
    assert [e.model_dump() for e in run(history, rules)] == [e.model_dump() for e in events]
    # Every source event made at most one earning line.
    earned = [e.source_event_id for e in events if isinstance(e, PointsEarned)]
    assert len(earned) == len(set(earned))
    # One bonus per survey answered, one per referred customer, one settled referral.
    surveys = [e.survey_id for e in events if isinstance(e, PointsEarned) and e.survey_id]
    assert len(surveys) == len(set(surveys))
    referred = [
        e.referred_customer_id
        for e in events
        if isinstance(e, PointsEarned) and e.reason == "referral"
    ]
    assert len(referred) == len(set(referred))
    settled = [e for e in events if isinstance(e, ReferralQualified | ReferralLapsed)]
    assert len(settled) <= 1
    if settled and ledger.first_order is not None and ledger.referral is not None:
        first_placed = ledger.first_order[1]
        assert isinstance(settled[0], ReferralQualified) == (
            first_placed >= ledger.referral.referred_at
        )
