"""The survey and referral bonuses as business rules (pure): given events, when a
command, then events (decision 0040)."""

from __future__ import annotations

from datetime import timedelta

from libs.events.catalog.loyalty import (
    LedgerTransferredIn,
    LoyaltyRulesSet,
    PointsEarned,
    ProgramRules,
    ReferralLapsed,
    ReferralQualified,
    ReferralRecorded,
)
from services.loyalty.commands import (
    ClawBackCancellation,
    EarnSurveyBonus,
    RecordReferral,
    TransferLedgerOut,
)
from services.loyalty.domain.decisions import decide, referral_bonus, transfer_in
from services.loyalty.domain.ledger import Ledger, fold
from services.loyalty.domain.rules import RulesBook
from services.loyalty.tests.test_domain import CUSTOMER, T0, Given, book, of_type, order

BONUSES = book(survey_bonus=20, referral_bonus=500)


def answered(event_id: str, survey_id: str = "sv-1") -> EarnSurveyBonus:
    return EarnSurveyBonus(event_id, survey_id, "CSAT", T0)


def referred(by: str = "c-friend", at: timedelta = timedelta(0)) -> RecordReferral:
    return RecordReferral("evt-referred", by, T0 + at)


# --- surveys --------------------------------------------------------------------------


def test_an_answered_survey_earns_the_tenants_survey_bonus_naming_the_answer() -> None:
    given = Given(BONUSES)
    (earned,) = given.when(answered("evt-csat-1"))
    assert isinstance(earned, PointsEarned)
    assert (earned.points, earned.reason) == (20, "survey")
    assert (earned.source_event_id, earned.survey_id) == ("evt-csat-1", "sv-1")


def test_a_survey_answer_earns_once_however_often_it_arrives() -> None:
    given = Given(BONUSES)
    given.when(answered("evt-csat-1"))
    assert given.when(answered("evt-csat-1")) == []
    # The same answer republished under another event id: still the same survey.
    assert given.when(answered("evt-republished")) == []
    given.when(answered("evt-csat-2", survey_id="sv-2"))
    assert given.balance() == 40


def test_no_survey_bonus_without_one_in_the_rules() -> None:
    assert Given().when(answered("evt-csat-1")) == []


def test_a_survey_earns_by_the_rules_in_force_when_it_was_answered() -> None:
    rules = RulesBook.of(
        [
            LoyaltyRulesSet(rules=ProgramRules(survey_bonus=5), effective_from=T0, by="m"),
            LoyaltyRulesSet(
                rules=ProgramRules(survey_bonus=50), effective_from=T0 + timedelta(days=1), by="m"
            ),
        ]
    )
    given = Given(rules)
    # Answered before the change, applied after it (a late delivery): the old bonus.
    given.when(answered("evt-csat-1"), T0 + timedelta(days=2))
    assert given.balance() == 5


# --- referrals: the referred customer's side --------------------------------------------


def test_a_referred_customers_first_order_qualifies_the_referral_once() -> None:
    given = Given(BONUSES)
    (recorded,) = given.when(referred())
    assert isinstance(recorded, ReferralRecorded) and recorded.referrer_id == "c-friend"
    (qualified,) = of_type(given.when(order(1, 10_000)), ReferralQualified)
    assert isinstance(qualified, ReferralQualified)
    assert (qualified.referrer_id, qualified.order_id, qualified.points) == ("c-friend", "o-1", 500)
    assert qualified.source_event_id == "evt-order-1"
    # A second order, the first again, or the referral again: nothing more.
    assert not of_type(given.when(order(2, 10_000, T0 + timedelta(days=1))), ReferralQualified)
    assert given.when(order(1, 10_000)) == []
    assert given.when(referred()) == []
    assert given.when(RecordReferral("evt-other", "c-other", T0)) == []


def test_an_order_that_arrives_before_the_referral_still_settles_it_by_business_time() -> None:
    # Topics are not ordered with each other: the order (placed after the referral was
    # recorded) may be applied first. The referral, when it comes, settles on it.
    given = Given(BONUSES)
    given.when(order(1, 10_000, T0 + timedelta(hours=1)))
    (_, qualified) = given.when(referred())
    assert isinstance(qualified, ReferralQualified) and qualified.order_id == "o-1"


def test_a_customer_who_ordered_before_being_referred_never_earns_the_referrer_a_bonus() -> None:
    given = Given(BONUSES)
    given.when(order(1, 10_000, T0 - timedelta(days=1)))
    (_, lapsed) = given.when(referred())
    assert isinstance(lapsed, ReferralLapsed) and lapsed.order_id == "o-1"
    assert not of_type(given.when(order(2, 10_000, T0 + timedelta(days=1))), ReferralQualified)

    # The same, the referral applied first: its first order settles it the same way.
    other = Given(BONUSES)
    other.when(referred())
    assert of_type(other.when(order(1, 10_000, T0 - timedelta(days=1))), ReferralLapsed)


def test_a_cancelled_first_order_keeps_the_referral_settled_and_pays_no_second_time() -> None:
    given = Given(BONUSES)
    given.when(referred())
    given.when(order(1, 10_000))
    given.when(ClawBackCancellation("evt-cancel-1", "o-1"))
    assert not of_type(given.when(order(2, 10_000, T0 + timedelta(days=1))), ReferralQualified)
    assert given.ledger.referral_settled


def test_the_bonus_is_the_one_in_force_when_the_first_order_was_placed() -> None:
    rules = RulesBook.of(
        [
            LoyaltyRulesSet(rules=ProgramRules(referral_bonus=100), effective_from=T0, by="m"),
            LoyaltyRulesSet(
                rules=ProgramRules(referral_bonus=900),
                effective_from=T0 + timedelta(days=5),
                by="m",
            ),
        ]
    )
    given = Given(rules)
    given.when(referred())
    (qualified,) = of_type(
        given.when(order(1, 10_000, T0 + timedelta(days=1)), T0 + timedelta(days=9)),
        ReferralQualified,
    )
    assert isinstance(qualified, ReferralQualified) and qualified.points == 100


# --- referrals: the referrer's side -------------------------------------------------------


def qualified_of(customer: str = CUSTOMER) -> ReferralQualified:
    return ReferralQualified(
        customer_id=customer,
        referrer_id="c-friend",
        order_id="o-1",
        points=500,
        source_event_id="evt-order-1",
    )


def test_the_referrer_earns_the_bonus_once_per_referred_customer() -> None:
    referrer = Ledger("c-friend")
    bonus = referral_bonus(qualified_of())
    (earned,) = decide(bonus, referrer, BONUSES, T0)
    assert isinstance(earned, PointsEarned)
    assert (earned.points, earned.reason, earned.referred_customer_id) == (
        500,
        "referral",
        CUSTOMER,
    )
    assert earned.source_event_id == f"referral:{CUSTOMER}"
    assert "o-1" in earned.explanation and "evt-order-1" in earned.explanation
    after = fold("c-friend", [earned])
    assert decide(bonus, after, BONUSES, T0 + timedelta(days=1)) == []
    assert after.balance == 500


def test_a_referrer_merged_into_the_customer_it_referred_earns_nothing_from_itself() -> None:
    assert decide(referral_bonus(qualified_of()), Ledger(CUSTOMER), BONUSES, T0) == []


# --- referrals and merges -----------------------------------------------------------------


def test_an_unsettled_referral_moves_to_the_survivor_whose_first_order_settles_it() -> None:
    duplicate = Given(BONUSES)
    duplicate.when(referred())
    out = duplicate.when(TransferLedgerOut("evt-merge", "c-2"))
    moved_in = transfer_in(duplicate.ledger, Ledger("c-2"), out[0], BONUSES, T0)  # type: ignore[arg-type]
    (transfer,) = moved_in
    assert isinstance(transfer, LedgerTransferredIn) and transfer.referral is not None
    survivor = fold("c-2", moved_in)
    events = decide(order(7, 10_000, T0 + timedelta(days=1)), survivor, BONUSES, T0)
    (qualified,) = of_type(events, ReferralQualified)
    assert isinstance(qualified, ReferralQualified)
    assert (qualified.customer_id, qualified.referrer_id) == ("c-2", "c-friend")


def test_a_referral_moving_to_a_survivor_that_had_ordered_before_it_lapses_at_once() -> None:
    duplicate = Given(BONUSES)
    duplicate.when(referred())
    out = duplicate.when(TransferLedgerOut("evt-merge", "c-2"))
    survivor = fold(
        "c-2", decide(order(7, 10_000, T0 - timedelta(days=30)), Ledger("c-2"), BONUSES, T0)
    )
    moved_in = transfer_in(duplicate.ledger, survivor, out[0], BONUSES, T0)  # type: ignore[arg-type]
    assert of_type(moved_in, ReferralLapsed)
