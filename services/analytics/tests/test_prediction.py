"""Predicted CLV: BG/NBD and Gamma-Gamma recover what generated a history, and predict
the orders that followed it."""

from __future__ import annotations

import random

from services.analytics.domain.prediction import Summary, predict
from services.analytics.tests.conftest import Api
from services.analytics.tests.histories import FEBRUARY, JANUARY, publish_history

WEEKS = 52.0


def simulate(customers: int, seed: int = 7) -> tuple[list[Summary], int]:
    """A BG/NBD world (r=0.5, alpha=2, a=1.5, b=4): the first year seen, orders in the
    second counted."""
    rnd = random.Random(seed)
    seen_years, following = [], 0
    for i in range(customers):
        rate = rnd.gammavariate(0.5, 1 / 2.0)
        dropout = rnd.betavariate(1.5, 4.0)
        t, times = 0.0, [0.0]
        while True:
            t += rnd.expovariate(rate)
            if t > 2 * WEEKS:
                break
            times.append(t)
            if rnd.random() < dropout:
                break
        seen = [x for x in times if x <= WEEKS]
        following += sum(1 for x in times if x > WEEKS)
        value = 100.0 + rnd.random() * 50
        seen_years.append(Summary(f"c{i}", len(seen) - 1, seen[-1], WEEKS, value))
    return seen_years, following


def test_the_models_recover_the_world_that_made_the_orders_and_predict_the_next_year() -> None:
    seen, following = simulate(1000)

    orders, _, predictions = predict(seen, WEEKS)

    assert abs(orders.r - 0.5) < 0.15 and abs(orders.alpha - 2.0) < 0.6
    assert abs(orders.a - 1.5) < 0.6 and abs(orders.b - 4.0) < 1.5
    predicted = sum(p.expected_orders for p in predictions)
    assert abs(predicted - following) / following < 0.1
    # Values drawn uniformly from 100-150: each expectation stays in that range.
    assert all(100 <= p.expected_value <= 150 for p in predictions)


async def test_the_figure_names_its_method_and_ranks_who_keeps_buying_first(api: Api) -> None:
    await publish_history(api)
    await api.caught_up()

    answer = await api.get("predicted-clv", as_of="2026-06-30", horizon_days=365)
    assert "BG/NBD" in answer["method"] and "Gamma-Gamma" in answer["method"]
    assert set(answer["models"]) == {"bg_nbd", "gamma_gamma"}
    assert answer["customers"] == 7 and answer["value"] > 0
    rows = {
        r["customer_id"]: r
        for r in (await api.get("predicted-clv/customers", as_of="2026-06-30"))["items"]
    }
    assert min(rows[c]["predicted_clv"] for c in JANUARY) > max(
        rows[c]["predicted_clv"] for c in FEBRUARY
    )
