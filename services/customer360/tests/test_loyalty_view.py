"""How the loyalty service's events fill the 360 view's loyalty section: pure, no I/O."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

from libs.events.catalog import DomainEvent
from libs.events.catalog.loyalty import (
    CheckedIn,
    LedgerTransferredIn,
    LedgerTransferredOut,
    LotDraw,
    OwedPointsRecovered,
    PointsAdjusted,
    PointsClawedBack,
    PointsEarned,
    PointsExpired,
    PointsRedeemed,
    RedemptionCancelled,
    TierAtRisk,
    TierChanged,
)
from services.customer360.domain.from_loyalty import LOYALTY, RECENT_LINES
from services.customer360.domain.view import CustomerView, Fact, Outcome, forget

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
C = "c-1"


def fact(n: int) -> Fact:
    return Fact(event_id=f"l-{n}", type="t", time=T0 + timedelta(minutes=n), stream_id=C,
                sequence=n, topic="crm.loyalty.events", partition=0, offset=n)


def apply_all(events: Sequence[DomainEvent], view: CustomerView | None = None,
              customer_id: str = C) -> tuple[CustomerView, list[Outcome]]:
    view = view or CustomerView("acme", customer_id)
    outcomes = []
    for n, event in enumerate(events, start=1):
        registered = LOYALTY.applier_for(event)
        assert registered is not None, type(event).__name__
        assert registered.customer_of(event) == customer_id
        outcome = registered.apply(view, event, fact(n))
        outcomes.append(outcome)
        view = outcome.view
    return view, outcomes


def earned(lot: str, points: int, *, days: int = 0, order_id: str | None = None,
           customer_id: str = C) -> PointsEarned:
    return PointsEarned(customer_id=customer_id, lot_id=lot, points=points,
                        reason="order" if order_id else "check_in", source_event_id=f"e-{lot}",
                        earned_at=T0 + timedelta(days=days), order_id=order_id)


def test_the_balance_is_the_sum_of_the_ledger_lines_whatever_moved_it() -> None:
    view, _ = apply_all([
        earned("lot-1", 500, order_id="o-1"),
        earned("lot-2", 10, days=1),
        PointsClawedBack(customer_id=C, order_id="o-1", source_event_id="e-r", refund_id="r-1",
                         refunded_amount=100_00, points=100,
                         draws=[LotDraw(lot_id="lot-1", points=100)]),
        PointsRedeemed(customer_id=C, redemption_id="rd-1", reward_id="mug", points=300,
                       draws=[LotDraw(lot_id="lot-1", points=300)], idempotency_key="k",
                       by="u-1"),
        RedemptionCancelled(customer_id=C, redemption_id="rd-1", reward_id="mug", points=300,
                            restored=[LotDraw(lot_id="lot-1", points=300)], by="u-1"),
        PointsExpired(customer_id=C, lot_id="lot-2", points=10, expired_at=T0 + timedelta(days=2)),
        PointsAdjusted(customer_id=C, adjustment_id="a-1", points=-50, reason="goodwill error",
                       by="m-1", adjusted_at=T0 + timedelta(days=3)),
        OwedPointsRecovered(customer_id=C, lot_id="lot-1", points=20),
    ])
    account = view.sections["loyalty"]
    assert account["balance"] == 500 + 10 - 100 - 300 + 300 - 10 - 50 - 20
    assert account["balance"] == sum(line["points"] for line in account["lines"])
    reasons = [line["reason"] for line in account["lines"]]
    assert sorted(reasons) == sorted([
        "order", "check_in", "clawback", "redemption", "redemption_cancelled", "expiry",
        "adjustment", "owed_recovered"])
    # Newest first by when each line took effect.
    assert [line["at"] for line in account["lines"]] == sorted(
        (line["at"] for line in account["lines"]), reverse=True)


def test_only_the_most_recent_lines_are_listed_but_all_count() -> None:
    view, _ = apply_all([earned(f"lot-{n}", 1, days=n) for n in range(RECENT_LINES + 5)])
    account = view.sections["loyalty"]
    assert account["balance"] == RECENT_LINES + 5
    assert len(account["lines"]) == RECENT_LINES
    assert account["lines"][0]["event_id"] == f"l-{RECENT_LINES + 5}"


def test_the_tier_follows_its_changes_and_shows_when_it_is_at_risk() -> None:
    view, outcomes = apply_all([
        TierChanged(customer_id=C, from_tier="普通会员", to_tier="gold",
                    qualifying_spend=2_500_000, reason="order", changed_at=T0),
        TierAtRisk(customer_id=C, tier="gold", qualifying_spend=1_000_000,
                   downgrade_at=T0 + timedelta(days=30)),
        CheckedIn(customer_id=C, day=date(2026, 3, 2), streak=3),
    ])
    account = view.sections["loyalty"]
    assert account["tier"] == "gold"
    assert account["downgrade_at"] == (T0 + timedelta(days=30)).isoformat()
    assert [o.entry.summary for o in outcomes if o.entry][-1] == (
        "Checked in on 2026-03-02 (streak 3)")


def test_a_merge_moves_the_balance_from_the_duplicate_to_the_survivor() -> None:
    duplicate, _ = apply_all([
        earned("lot-d", 70, customer_id="dup"),
        LedgerTransferredOut(customer_id="dup", survivor_id=C, source_event_id="m-1",
                             points=70),
    ], customer_id="dup")
    assert duplicate.sections["loyalty"]["balance"] == 0
    survivor, _ = apply_all([
        earned("lot-s", 30),
        LedgerTransferredIn(customer_id=C, duplicate_id="dup", source_event_id="m-1",
                            points=70),
    ])
    assert survivor.sections["loyalty"]["balance"] == 100


def test_erasure_blanks_the_notes_and_keeps_the_points() -> None:
    view, outcomes = apply_all([
        PointsAdjusted(customer_id=C, adjustment_id="a-1", points=200,
                       reason="sorry for Li Na's broken parcel", by="m-1", adjusted_at=T0),
    ])
    erased = forget(view, T0)
    [line] = erased.sections["loyalty"]["lines"]
    assert (line["note"], line["points"]) == ("", 200)
    assert erased.sections["loyalty"]["balance"] == 200
    [outcome] = outcomes
    assert outcome.entry is not None
    assert "Li Na" in outcome.entry.summary
    assert "Li Na" not in outcome.entry.redacted_summary


def test_referral_and_survey_bonuses_are_lines_that_say_what_earned_them() -> None:
    view, outcomes = apply_all([
        PointsEarned(customer_id=C, lot_id="l-r", points=300, reason="referral",
                     source_event_id="referral:c-9", earned_at=T0, referred_customer_id="c-9"),
        PointsEarned(customer_id=C, lot_id="l-s", points=20, reason="survey",
                     source_event_id="e-nps", earned_at=T0, survey_id="sv-1"),
    ])
    account = view.sections["loyalty"]
    assert account["balance"] == 320
    assert sorted(line["reason"] for line in account["lines"]) == ["referral", "survey"]
    summaries = [o.entry.summary for o in outcomes if o.entry]
    assert "referred customer c-9" in summaries[0]
    assert "survey sv-1" in summaries[1]
