"""The churn rules: given these events up to this time, this score and these reasons."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from libs.events.catalog.alerts import ChurnRules, SignalRule
from libs.events.catalog.loyalty import CheckedIn, PointsEarned
from libs.events.catalog.pipeline import OrderPlaced
from services.alerts.domain.facts import Fact, FactKind, as_of, typical_repeat_days
from services.alerts.domain.risk import (
    ChurnRisk,
    assess,
    level_of,
    next_review,
    rank_key,
    rose_to_high,
)
from services.alerts.domain.rules import default_rules
from services.alerts.domain.signals import Context
from services.alerts.domain.sources import fact_of

NOW = datetime(2026, 11, 30, 9, tzinfo=UTC)
RULES = default_rules()


def days_ago(n: float) -> datetime:
    return NOW - timedelta(days=n)


def order(n: float, order_id: str | None = None) -> Fact:
    ref = order_id or f"o{n}"
    return Fact(FactKind.ORDER, days_ago(n), f"e-{ref}", ref=ref)


def fact(kind: FactKind, n: float, event_id: str, **kw: object) -> Fact:
    return Fact(kind, days_ago(n), event_id, **kw)  # type: ignore[arg-type]


def signals(risk: ChurnRisk) -> list[str]:
    return [r.signal for r in risk.reasons]


def test_a_customer_with_no_events_scores_zero() -> None:
    risk = assess("c1", [], RULES, NOW)
    assert (risk.score, risk.level, risk.reasons) == (0, "none", ())


def test_a_monthly_buyer_who_stopped_buying_is_overdue_and_high() -> None:
    """Stopping is one story told once: the drop in frequency is not counted on top of
    being overdue (decision 0055), and a buyer gone four rhythms is high on its own."""
    given = [order(n) for n in (330, 300, 270, 240, 210, 180, 150, 120)]

    risk = assess("c1", given, RULES, NOW)

    assert signals(risk) == ["order_overdue"]
    (overdue,) = risk.reasons
    assert overdue.sentence == "No order for 120 days; this customer usually buys every 30 days."
    # The same facts as data, for a reader who words them in another language.
    assert (overdue.figures["days"], overdue.figures["cadence_days"]) == (120, 30)
    assert overdue.figures["own_cadence"] == "yes"
    assert overdue.event_ids == ["e-o120"]
    assert overdue.contribution == 60  # four times the rhythm: full strength
    assert risk.score == 60 and risk.level == "high"


def test_a_monthly_buyer_who_slowed_down_is_flagged_for_the_drop_where_it_is_on() -> None:
    given = [order(n) for n in (330, 300, 270, 240, 210, 180, 150, 120, 20)]
    drop_on = RULES.model_copy(
        update={
            "signals": {
                **RULES.signals,
                "order_frequency_drop": RULES.signals["order_frequency_drop"].model_copy(
                    update={"enabled": True}
                ),
            }
        }
    )

    by_default = assess("c1", given, RULES, NOW)
    risk = assess("c1", given, drop_on, NOW)

    assert by_default.score == 0  # off by default: it did not earn its place (0093)

    assert signals(risk) == ["order_frequency_drop"]
    (drop,) = risk.reasons
    assert drop.sentence.startswith("Bought once in the last 90 days, against about 3.0")
    assert drop.event_ids[:2] == ["e-o20", "e-o120"]
    assert drop.contribution == 7  # weight 10 x the drop (two thirds)


def test_a_customer_buying_at_their_usual_rhythm_is_not_at_risk() -> None:
    given = [order(n) for n in (150, 120, 90, 60, 30, 2)]
    assert assess("c1", given, RULES, NOW).score == 0


def test_a_one_time_buyer_is_overdue_against_the_tenants_typical_repeat_interval() -> None:
    given = [order(70)]

    quiet = assess("c1", given, RULES, NOW, Context(typical_repeat_days=30))
    unknown = assess("c1", given, RULES, NOW, Context(typical_repeat_days=None))

    assert signals(quiet) == ["order_overdue"]
    assert "customers usually return within 30 days" in quiet.reasons[0].sentence
    assert unknown.score == 0


def test_the_tenants_typical_repeat_interval_is_the_median_of_repeat_buyers_cadences() -> None:
    customers = [
        as_of([order(100), order(90)], NOW),  # 10 days
        as_of([order(100), order(70)], NOW),  # 30 days
        as_of([order(100), order(50)], NOW),  # 50 days
        as_of([order(5)], NOW),  # one-time buyer: no cadence
    ]
    assert typical_repeat_days(customers) == 30


def test_complaints_increasing_count_with_sla_breaches_and_name_their_events() -> None:
    given = [
        fact(FactKind.COMPLAINT, 40, "old"),
        fact(FactKind.COMPLAINT, 10, "c-1"),
        fact(FactKind.SLA_BREACH, 5, "b-1"),
    ]

    risk = assess("c1", given, RULES, NOW)

    assert signals(risk) == ["complaints_increase"]
    reason = risk.reasons[0]
    assert reason.sentence == (
        "1 complaint and 1 missed service target in the last 30 days, "
        "against 1 in the 30 days before."
    )
    assert reason.event_ids == ["b-1", "c-1"]


def test_as_many_complaints_as_before_is_not_an_increase() -> None:
    given = [fact(FactKind.COMPLAINT, n, f"c{n}") for n in (50, 45, 10, 5)]
    assert assess("c1", given, RULES, NOW).score == 0


def test_complaints_and_a_key_contact_change_make_a_high_risk_with_both_reasons() -> None:
    given = [
        fact(FactKind.COMPLAINT, 10, "c-1"),
        fact(FactKind.COMPLAINT, 3, "c-2"),
        fact(FactKind.KEY_CONTACT_CHANGED, 7, "k-1", ref="purchasing"),
    ]

    risk = assess("c1", given, RULES, NOW)

    assert signals(risk) == ["key_contact_changed", "complaints_increase"]
    assert risk.reasons[0].sentence.startswith("The key contact changed (purchasing) 7 days ago")
    assert risk.reasons[0].event_ids == ["k-1"]
    assert risk.level == "high"


def test_a_key_contact_change_older_than_its_window_no_longer_counts() -> None:
    given = [fact(FactKind.KEY_CONTACT_CHANGED, 91, "k-1", ref="purchasing")]
    assert assess("c1", given, RULES, NOW).score == 0


def test_interactions_falling_by_half_or_more_fire() -> None:
    given = [fact(FactKind.INTERACTION, n, f"i{n}") for n in (110, 100, 90, 80, 70, 20)]

    risk = assess("c1", given, RULES, NOW)

    assert signals(risk) == ["interactions_fall"]
    assert risk.reasons[0].sentence == (
        "1 interaction in the last 60 days, down from 5 in the 60 days before."
    )
    assert risk.reasons[0].contribution == 16  # 20 x a fall of 80%


def test_rising_refunds_fire() -> None:
    given = [fact(FactKind.REFUND, n, f"r{n}", ref="o1") for n in (40, 20)]
    risk = assess("c1", given, RULES, NOW)
    assert signals(risk) == ["refunds_rising"]
    assert risk.reasons[0].event_ids == ["r20", "r40"]


def test_an_nps_detractor_answer_fires_more_strongly_the_lower_it_is() -> None:
    zero = assess("c1", [fact(FactKind.NPS, 3, "n", value=0)], RULES, NOW)
    six = assess("c1", [fact(FactKind.NPS, 3, "n", value=6)], RULES, NOW)
    promoter = assess("c1", [fact(FactKind.NPS, 3, "n", value=9)], RULES, NOW)

    assert zero.reasons[0].contribution == 25 > six.reasons[0].contribution == 15
    assert "Answered 0 out of 10" in zero.reasons[0].sentence
    assert promoter.score == 0


def test_a_later_promoter_answer_replaces_a_detractor_one() -> None:
    given = [fact(FactKind.NPS, 30, "n1", value=2), fact(FactKind.NPS, 3, "n2", value=10)]
    assert assess("c1", given, RULES, NOW).score == 0


def test_a_contract_ending_soon_without_renewal_fires_until_it_is_renewed() -> None:
    signed = fact(FactKind.CONTRACT_SIGNED, 300, "k-signed", ref="k1", until=date(2027, 1, 9))
    renewed = fact(FactKind.CONTRACT_RENEWED, 1, "k-renewed", ref="k1", until=date(2028, 1, 9))

    before = assess("c1", [signed], RULES, NOW)
    after = assess("c1", [signed, renewed], RULES, NOW)

    assert signals(before) == ["contract_ending"]
    assert before.reasons[0].sentence == (
        "Contract k1 ends on 2027-01-09 (in 40 days) and has not been renewed."
    )
    assert before.reasons[0].event_ids == ["k-signed"]
    assert after.score == 0


def test_an_auto_renewing_contract_does_not_fire() -> None:
    signed = fact(FactKind.CONTRACT_SIGNED, 300, "k", ref="k1", until=date(2027, 1, 9), flag=True)
    assert assess("c1", [signed], RULES, NOW).score == 0


def test_loyalty_gone_quiet_after_regular_activity_fires() -> None:
    given = [fact(FactKind.LOYALTY_ACTIVITY, n, f"l{n}") for n in (200, 150, 120)]
    risk = assess("c1", given, RULES, NOW)
    assert signals(risk) == ["loyalty_quiet"]
    assert risk.reasons[0].sentence.startswith("No loyalty activity for 120 days, after 3")


def test_a_cancelled_order_never_counted_as_buying() -> None:
    given = [
        *[order(n) for n in (330, 300, 270, 240, 210, 180, 150, 120)],
        order(10, "late"),
        Fact(FactKind.ORDER_CANCELLED, days_ago(9), "cancel", ref="late"),
    ]
    still = assess("c1", given, RULES, NOW)
    assert "order_overdue" in signals(still)
    # Before it was cancelled, the order counted.
    then = assess("c1", given, RULES, days_ago(9.5))
    assert "order_overdue" not in signals(then)


def test_scoring_as_of_a_past_day_reads_only_what_had_happened_by_then() -> None:
    given = [
        fact(FactKind.COMPLAINT, 10, "c-1"),
        fact(FactKind.COMPLAINT, 3, "c-2"),
        fact(FactKind.KEY_CONTACT_CHANGED, 7, "k-1", ref="purchasing"),
    ]

    then = assess("c1", given, RULES, days_ago(8))
    earlier = [f for f in given if f.at <= days_ago(8)]

    assert then == assess("c1", earlier, RULES, days_ago(8))
    assert then.score == 0  # one complaint is not yet an increase of two


def test_a_tenant_can_weigh_a_signal_differently_or_switch_it_off() -> None:
    given = [fact(FactKind.KEY_CONTACT_CHANGED, 7, "k-1", ref="purchasing")]
    heavier = RULES.model_copy(
        update={
            "signals": {
                **RULES.signals,
                "key_contact_changed": SignalRule(weight=70, window_days=30, threshold=1),
            }
        }
    )
    off = RULES.model_copy(
        update={
            "signals": {
                **RULES.signals,
                "key_contact_changed": SignalRule(
                    enabled=False, weight=70, window_days=30, threshold=1
                ),
            }
        }
    )

    assert assess("c1", given, heavier, NOW).level == "high"
    assert assess("c1", given, off, NOW).score == 0


def test_the_score_is_capped_at_100() -> None:
    given = [
        *[order(n) for n in (330, 300, 270, 240, 210, 180, 150, 120)],
        fact(FactKind.COMPLAINT, 10, "c-1"),
        fact(FactKind.COMPLAINT, 3, "c-2"),
        fact(FactKind.KEY_CONTACT_CHANGED, 7, "k-1", ref="x"),
    ]
    assert assess("c1", given, RULES, NOW).score == 100


def test_levels_follow_the_tenants_bands() -> None:
    rules = ChurnRules(signals=RULES.signals, high_from=80, medium_from=50, low_from=20)
    assert [level_of(s, rules) for s in (0, 19, 20, 50, 79, 80)] == [
        "none",
        "none",
        "low",
        "medium",
        "medium",
        "high",
    ]


def test_at_one_score_the_customer_longest_without_an_order_ranks_first() -> None:
    a = assess("a", [order(10)], RULES, NOW)
    b = assess("b", [order(40)], RULES, NOW)
    assert sorted([a, b], key=rank_key)[0].customer_id == "b"


def test_a_rise_to_high_is_raised_once() -> None:
    assert rose_to_high("medium", "high") and rose_to_high(None, "high")
    assert not rose_to_high("high", "high")
    assert not rose_to_high("high", "medium")


def test_points_an_order_earned_are_not_loyalty_activity_again() -> None:
    """A purchase is a purchase once: its points make no fact of their own; the
    customer's own loyalty acts (a check-in) still do."""
    placed = OrderPlaced(
        order_id="o1", customer_id="c1", currency="CNY", total=100, placed_at=days_ago(120)
    )
    earned = PointsEarned(
        customer_id="c1",
        lot_id="lot-1",
        points=1,
        reason="order",
        source_event_id="e-order",
        earned_at=days_ago(120),
        order_id="o1",
    )
    checked_in = CheckedIn(customer_id="c1", day=days_ago(100).date(), streak=1)

    placed_fact = fact_of(placed, "e-order", days_ago(120))
    assert placed_fact is not None and placed_fact.kind is FactKind.ORDER
    assert fact_of(earned, "e-points", days_ago(120)) is None
    checked = fact_of(checked_in, "e-check-in", days_ago(100))
    assert checked is not None and checked.kind is FactKind.LOYALTY_ACTIVITY


def test_the_next_review_is_a_day_on_or_just_after_a_task_falls_due() -> None:
    assert next_review(NOW) == NOW + timedelta(days=1)
    due = NOW + timedelta(hours=3)
    assert next_review(NOW, [due, NOW - timedelta(days=2)]) == due + timedelta(microseconds=1)
    assert next_review(NOW, [NOW + timedelta(days=5)]) == NOW + timedelta(days=1)
