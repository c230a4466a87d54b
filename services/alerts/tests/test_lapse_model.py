"""The lapse model a tenant's history teaches (decisions 0055, 0089): which shape, and
when BG/NBD joins it."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from services.alerts.domain.backtest import roc_auc
from services.alerts.domain.cadence import (
    BLEND_MARGIN,
    GRID,
    HORIZON_DAYS,
    Buying,
    buying,
    calibrate,
    index,
)

WHEN = datetime(2026, 6, 1, tzinfo=UTC)


def bgnbd_histories(customers: int, seed: int) -> list[list[datetime]]:
    """Buyers exactly as BG/NBD assumes them: each buys at its own Poisson rate
    (gamma-distributed across buyers) and, after each purchase, drops out for good with
    its own probability (beta-distributed); they join over two years."""
    rng = random.Random(seed)
    histories = []
    start = WHEN - timedelta(days=730)
    for _ in range(customers):
        rate = rng.gammavariate(0.8, 1 / 12.0)  # purchases a day
        dropout = rng.betavariate(0.9, 4.0)
        at = start + timedelta(days=rng.uniform(0, 540))
        times = [at]
        while True:
            if rng.random() < dropout:
                break
            at += timedelta(days=rng.expovariate(rate) + 1)
            if at > WHEN:
                break
            times.append(at)
        histories.append(times)
    return histories


def test_on_buyers_as_bgnbd_assumes_them_bgnbd_joins_the_shape_and_ranks_better() -> None:
    histories = bgnbd_histories(3000, seed=89)
    model = calibrate(histories, WHEN)
    assert model.customers >= 1000 and model.blend is not None

    # Judged as the calibration judges: buyers as of HORIZON_DAYS before, bought since?
    start = WHEN - timedelta(days=HORIZON_DAYS)
    judged = [
        (b, not any(start < t <= WHEN for t in times))
        for times in histories
        if (b := buying(times, start)) is not None
    ]
    labels = [churned for _, churned in judged]
    shape_alone = roc_auc([index(b, model.shape) for b, _ in judged], labels)
    with_bgnbd = roc_auc([model.index(b) for b, _ in judged], labels)
    assert shape_alone is not None and with_bgnbd is not None
    assert with_bgnbd > shape_alone + BLEND_MARGIN


def test_too_few_buyers_keep_the_default_shape_without_bgnbd() -> None:
    model = calibrate(bgnbd_histories(100, seed=1), WHEN)
    assert (model.customers, model.blend) == (0, None)


def test_the_rhythm_term_puts_a_weekly_buyer_gone_a_month_above_a_quarterly_one() -> None:
    weekly = Buying(age_days=365, silence_days=30, repeats=10, rhythm_days=7)
    quarterly = Buying(age_days=365, silence_days=30, repeats=10, rhythm_days=90)
    with_rhythm = next(s for s in GRID if s[3] > 0)
    without = (*with_rhythm[:3], 0.0)
    assert index(weekly, with_rhythm) > index(quarterly, with_rhythm)
    assert index(weekly, without) == index(quarterly, without)
