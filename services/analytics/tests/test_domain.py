"""The figures' rules without I/O: given dated facts, the figure is known in closed form."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from libs.events.catalog.analytics import AnalyticsSettings, SegmentFilter
from services.analytics.domain.churn import Sale, Span, contract_losses, losses, monthly_churn
from services.analytics.domain.cohorts import cells_of, retention
from services.analytics.domain.periods import label, period_of, periods_between
from services.analytics.domain.sales import CustomerSales, historic_clv, repurchase_rate
from services.analytics.domain.satisfaction import SurveyAnswer, csat, nps
from services.analytics.domain.segments import Profile, changes, member, needs

T = datetime(2026, 6, 30, 23, 0, tzinfo=UTC)


def day(month: int, d: int) -> datetime:
    return datetime(2026, month, d, 12, tzinfo=UTC)


def test_weeks_start_on_monday_and_months_on_the_first() -> None:
    assert period_of(day(3, 5), "week") == date(2026, 3, 2)
    assert period_of(day(3, 5), "month") == date(2026, 3, 1)
    assert periods_between(date(2025, 11, 1), date(2026, 2, 1), "month") == 3
    assert label(date(2026, 3, 2), "week") == "2026-W10"


def test_a_customer_belongs_to_the_cohort_of_its_first_order_only() -> None:
    bought = [("a", date(2026, 1, 1)), ("a", date(2026, 3, 1)), ("b", date(2026, 2, 1))]
    cells = cells_of(bought)
    assert cells == {
        (date(2026, 1, 1), date(2026, 1, 1)): 1,
        (date(2026, 1, 1), date(2026, 3, 1)): 1,
        (date(2026, 2, 1), date(2026, 2, 1)): 1,
    }
    table = retention(cells, "month", date(2026, 3, 1)).table
    assert table[0]["buyers"] == [1, 0, 1] and table[0]["retention"] == [1.0, 0.0, 1.0]
    assert cells_of(bought, members={"b"}) == {(date(2026, 2, 1), date(2026, 2, 1)): 1}


def test_a_customer_who_comes_back_in_time_is_never_lost() -> None:
    sales = [Sale(day(1, 1), 100), Sale(day(1, 31), 100), Sale(day(3, 1), 100)]
    assert losses("c", sales, timedelta(days=40), T) == [
        losses("c", sales, timedelta(days=40), T)[0]
    ]
    (only,) = losses("c", sales, timedelta(days=40), T)
    assert only.lost_at == day(3, 1) + timedelta(days=40)
    assert only.revenue_lost == 300


def test_a_month_churn_counts_only_those_active_at_its_start() -> None:
    histories = {
        "stays": [Sale(day(1, 20), 10), Sale(day(2, 10), 10), Sale(day(3, 1), 10)],
        "leaves": [Sale(day(1, 10), 50)],
        # First bought mid-February and lost in February: not active on its first day.
        "brief": [Sale(day(2, 1), 5)],
    }
    answer = monthly_churn(histories, [date(2026, 2, 1)], timedelta(days=25), T)
    (february,) = answer.table
    assert (february["active_at_start"], february["lost"]) == (2, 1)
    assert february["revenue_lost"] == 50
    assert [c["customer_id"] for c in answer.customers] == ["leaves"]


def sold(customer_id: str, orders: int, net: int, last: datetime | None = None) -> CustomerSales:
    return CustomerSales(customer_id, orders, net, orders, net, day(1, 1), last or day(1, 1))


def test_a_fully_refunded_order_is_an_order_worth_nothing() -> None:
    answer = historic_clv([sold("a", 2, 3000), sold("refunded", 1, 0)])
    assert answer.summary["value"] == 1500.0
    assert answer.summary["distribution"]["min"] == 0
    assert repurchase_rate([sold("a", 2, 3000), sold("refunded", 1, 0)]).summary["value"] == 0.5


def test_a_segment_filter_needs_every_condition() -> None:
    rule = SegmentFilter(
        tags_all=["b2b"], owner_ids=["u-1"], total_spent_min=1000, last_order_after=day(3, 1)
    )
    profile = Profile("c", tags=frozenset({"b2b", "east"}), owner_id="u-1")
    settings = AnalyticsSettings()
    assert member(rule, profile, sold("c", 3, 1500, day(4, 1)), settings, T)
    assert not member(rule, profile, sold("c", 3, 900, day(4, 1)), settings, T)
    assert not member(rule, profile, sold("c", 3, 1500, day(2, 1)), settings, T)
    assert not member(rule, Profile("c", tags=frozenset({"b2b"})), sold("c", 3, 1500), settings, T)
    assert not member(rule, profile, None, settings, T)


def test_built_in_segments_by_spend_and_by_silence() -> None:
    settings = AnalyticsSettings(
        vip_spend_from=10_000, growth_spend_from=2_000, at_risk_after_days=30, lost_after_days=60
    )
    p = Profile("c", registered_at=T - timedelta(days=3))
    assert member("vip", p, sold("c", 5, 10_000, T), settings, T)
    assert member("growth", p, sold("c", 5, 9_999, T), settings, T)
    assert member("normal", p, sold("c", 1, 1_999, T), settings, T)
    assert not member("normal", p, None, settings, T)
    assert member("new", p, None, settings, T)
    assert member("at-risk", p, sold("c", 1, 1, T - timedelta(days=30)), settings, T)
    assert not member("lost", p, sold("c", 1, 1, T - timedelta(days=59)), settings, T)
    assert member("lost", p, sold("c", 1, 1, T - timedelta(days=60)), settings, T)
    assert changes({"a", "b"}, {"b", "c"}).entered == ["c"]
    assert changes({"a", "b"}, {"b", "c"}).left == ["a"]


def test_nps_is_promoters_less_detractors_and_csat_the_satisfied_share() -> None:
    answers = [
        SurveyAnswer("a", "nps", 10, day(1, 5)),
        SurveyAnswer("b", "nps", 9, day(1, 6)),
        SurveyAnswer("c", "nps", 7, day(2, 5)),
        SurveyAnswer("d", "nps", 3, day(2, 6)),
        SurveyAnswer("a", "csat", 5, day(1, 5), category="complaint"),
        SurveyAnswer("b", "csat", 2, day(1, 6), category="question"),
    ]
    overall = nps(answers, "period", "month")
    assert overall.summary["nps"] == 25.0  # (2 - 1) / 4
    assert [(r["period"], r["nps"]) for r in overall.table] == [
        ("2026-01", 100.0),
        ("2026-02", -50.0),
    ]
    by_category = csat(answers, "category", "month")
    assert by_category.summary["csat"] == 0.5
    assert [(r["category"], r["csat"]) for r in by_category.table] == [
        ("complaint", 1.0),
        ("question", 0.0),
    ]


def test_a_segment_reads_only_what_its_conditions_name() -> None:
    assert needs("vip") == (False, True) and needs("new") == (False, False)
    assert needs(SegmentFilter(tags_any=["b2b"])) == (True, False)
    assert needs(SegmentFilter(order_count_min=0)) == (False, True)
    assert needs(SegmentFilter()) == (False, False)


def test_a_contract_customer_is_lost_when_its_contract_ends_unrenewed() -> None:
    ends = datetime(2026, 4, 1, tzinfo=UTC)
    spans = {
        "ended": [Span(datetime(2026, 1, 1, tzinfo=UTC), ends)],
        # Renewed before the end: a second contract carries on, nobody is lost.
        "renewed": [
            Span(datetime(2026, 1, 1, tzinfo=UTC), ends),
            Span(ends, datetime(2027, 1, 1, tzinfo=UTC)),
        ],
    }
    sales = {"ended": [Sale(day(1, 5), 700)], "renewed": [Sale(day(1, 5), 900)]}
    answer = monthly_churn(
        sales, [date(2026, 3, 1), date(2026, 4, 1)], timedelta(days=30), T, spans
    )
    march, april = answer.table
    # Under contract, silence since January does not make either lost in March.
    assert (march["active_at_start"], march["lost"]) == (2, 0)
    assert (april["active_at_start"], april["lost"], april["revenue_lost"]) == (2, 1, 700)
    assert [c["customer_id"] for c in answer.customers] == ["ended"]
    assert contract_losses("ended", spans["ended"], sales["ended"], ends - timedelta(days=1)) == []
