"""What a customer at risk is worth (decision 0101): the probability of no purchase in
the next 90 days, learnt from the tenant's past and calibrated on what followed; the
predicted value, analytics' predicted CLV; and their product, the revenue at risk."""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import cache

from libs.buyer_models import buyer_of, fit_value_model
from services.alerts.domain.cadence import HORIZON_DAYS, buying
from services.alerts.domain.facts import Fact, FactKind, as_of
from services.alerts.domain.risk import assess, value_key
from services.alerts.domain.rules import default_rules
from services.alerts.domain.signals import Context, tenant_context_of
from services.alerts.domain.value import (
    VALUE_HORIZON_DAYS,
    Purchases,
    fit_value,
    purchases_of,
    worth,
)
from services.alerts.tests.test_lapse_model import WHEN, bgnbd_histories


def tenant(customers: int, seed: int, until: datetime) -> dict[str, Purchases]:
    """A BG/NBD world seen by ``until``: each order worth 50-150.00 by customer."""
    found = {}
    for n, times in enumerate(bgnbd_histories(customers, seed)):
        seen = [t for t in times if t <= until]
        if seen:
            found[f"c{n:05d}"] = Purchases(seen, float(len(seen) * (5_000 + 100 * (n % 100))))
    return found


def facts_of(customer_id: str, times: list[datetime], each: float) -> list[Fact]:
    return [
        Fact(FactKind.ORDER, at, f"{customer_id}-e{i}", ref=f"{customer_id}-o{i}", value=each)
        for i, at in enumerate(times)
    ]


@cache
def context_now() -> Context:
    """One tenant's context as of WHEN, learnt once for the tests that read it."""
    return tenant_context_of(tenant(800, 7, WHEN), WHEN)


def brier(pairs: list[tuple[float, bool]]) -> float:
    return sum((p - churned) ** 2 for p, churned in pairs) / len(pairs)


def test_the_probability_is_calibrated_on_what_followed_better_than_the_base_rate() -> None:
    # Learnt as of a cutoff, judged on the 90 days after it, which it never saw.
    cutoff = WHEN - timedelta(days=HORIZON_DAYS)
    histories = bgnbd_histories(2000, seed=101)
    context = tenant_context_of(tenant(2000, 101, cutoff), cutoff)
    judged = []
    for times in histories:
        b = buying(times, cutoff)
        if b is not None:
            probability = context.lapse.probability(b)
            assert probability is not None
            judged.append((probability, not any(cutoff < t <= WHEN for t in times)))
    base = sum(churned for _, churned in judged) / len(judged)

    ours = brier(judged)
    constant = brier([(base, churned) for _, churned in judged])
    mean_probability = sum(p for p, _ in judged) / len(judged)

    assert ours < constant - 0.01
    assert abs(mean_probability - base) < 0.05  # calibrated in the large


def test_the_predicted_value_is_analytics_predicted_clv_and_revenue_at_risk_their_product() -> (
    None
):
    purchases = tenant(800, 7, WHEN)
    context = context_now()
    times = purchases["c00003"].times
    folded = as_of(facts_of("c00003", times, 5_300.0), WHEN)

    found = worth("c00003", folded, context.lapse, context.value)

    buyers = [
        buyer_of(c, p.times[0], p.times[-1], len(p.times), p.net, WHEN)
        for c, p in sorted(purchases.items())
    ]
    # What analytics' predicted-CLV figure computes from the same buyers (its predict).
    model = fit_value_model(buyers)
    analytics = {b.customer_id: model.predict(b, VALUE_HORIZON_DAYS / 7).clv for b in buyers}[
        "c00003"
    ]
    assert found.predicted_value == round(analytics)
    assert found.no_purchase_probability is not None and found.predicted_value is not None
    assert found.revenue_at_risk == round(found.no_purchase_probability * found.predicted_value)


def test_refunds_and_cancellations_lower_the_predicted_value() -> None:
    context = context_now()
    times = [WHEN - timedelta(days=d) for d in (200, 120, 40)]
    facts = facts_of("c-1", times, 10_000.0)
    whole = worth("c-1", as_of(facts, WHEN), context.lapse, context.value)
    refunded = [*facts, Fact(FactKind.REFUND, WHEN - timedelta(days=30), "r1", "c-1-o2", 8000)]
    cancelled = [*facts, Fact(FactKind.ORDER_CANCELLED, WHEN - timedelta(days=30), "x1", "c-1-o2")]

    less = worth("c-1", as_of(refunded, WHEN), context.lapse, context.value)
    fewer = worth("c-1", as_of(cancelled, WHEN), context.lapse, context.value)

    assert whole.predicted_value is not None and less.predicted_value is not None
    assert fewer.predicted_value is not None
    assert less.predicted_value < whole.predicted_value
    assert fewer.predicted_value < whole.predicted_value
    assert purchases_of(as_of(cancelled, WHEN)).times == times[:2]


def test_a_customer_who_never_bought_or_a_tenant_too_small_has_no_worth_yet() -> None:
    context = context_now()
    never = worth("c-1", as_of([], WHEN), context.lapse, context.value)
    small = tenant_context_of(tenant(2, 7, WHEN), WHEN)
    one = as_of(facts_of("c-2", [WHEN - timedelta(days=10)], 5_000.0), WHEN)

    assert (never.no_purchase_probability, never.predicted_value, never.revenue_at_risk) == (
        None,
        None,
        None,
    )
    assert fit_value(tenant(2, 7, WHEN), WHEN) is None
    assert worth("c-2", one, small.lapse, small.value).revenue_at_risk is None


def test_the_largest_revenue_at_risk_ranks_first_whatever_the_score() -> None:
    context = context_now()
    rules = default_rules()
    gone_long = [WHEN - timedelta(days=d) for d in (400, 380)]
    risks = [
        assess("small", facts_of("small", gone_long, 1_000.0), rules, WHEN, context),
        assess("large", facts_of("large", gone_long, 90_000.0), rules, WHEN, context),
        assess("none", [], rules, WHEN, context),
    ]

    ranked = [r.customer_id for r in sorted(risks, key=value_key)]

    assert risks[0].score == risks[1].score
    assert ranked == ["large", "small", "none"]
    assert risks[1].worth.revenue_at_risk and risks[0].worth.revenue_at_risk
    assert risks[1].worth.revenue_at_risk > risks[0].worth.revenue_at_risk


def test_a_value_is_in_minor_units_over_a_year() -> None:
    # A steady buyer's predicted year is of the order of its orders' value times its
    # yearly rate: the horizon is VALUE_HORIZON_DAYS, not HORIZON_DAYS.
    context = context_now()
    times = [WHEN - timedelta(days=d) for d in range(360, 0, -30)]
    folded = as_of(facts_of("c-1", times, 10_000.0), WHEN)
    found = worth("c-1", folded, context.lapse, context.value)
    assert found.predicted_value is not None
    assert 10_000 * 2 < found.predicted_value < 10_000 * 15
