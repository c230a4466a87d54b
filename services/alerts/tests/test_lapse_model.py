"""The lapse model a tenant's history teaches (decisions 0055, 0089): which shape, and
when BG/NBD joins it."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from functools import cache

from services.alerts.domain.backtest import roc_auc
from services.alerts.domain.cadence import (
    BLEND_MARGIN,
    GRID,
    HORIZON_DAYS,
    Buying,
    LapseModel,
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


@cache
def as_bgnbd_assumes() -> tuple[list[list[datetime]], LapseModel]:
    """3,000 buyers as BG/NBD assumes them, and the model learnt from them (once)."""
    histories = bgnbd_histories(3000, seed=89)
    return histories, calibrate(histories, WHEN)


def test_on_buyers_as_bgnbd_assumes_them_bgnbd_joins_the_shape_and_ranks_better() -> None:
    histories, model = as_bgnbd_assumes()
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


def fixed_rhythm_histories(customers: int, seed: int) -> list[list[datetime]]:
    """Buyers each at its own fixed rhythm (every 10, 30 or 90 days); half stop at a
    random time in the last seven months."""
    rng = random.Random(seed)
    histories = []
    for n in range(customers):
        gap = rng.choice((10, 30, 90))
        stops = WHEN - timedelta(days=rng.uniform(0, 210)) if n % 2 else WHEN
        at = WHEN - timedelta(days=720 - rng.uniform(0, 90))
        times = []
        while at <= stops:
            times.append(at)
            at += timedelta(days=gap * rng.uniform(0.7, 1.3))
        histories.append(times)
    return histories


def test_the_rhythm_gate_is_on_where_it_ranked_the_past_better_and_off_elsewhere() -> None:
    # Buyers of fixed rhythms: a weekly buyer gone a month is gone, whatever most buyers
    # silent that long did. Buyers as BG/NBD assumes them: silence says it all.
    rhythmic = calibrate(fixed_rhythm_histories(1000, seed=3), WHEN)
    _, as_bgnbd = as_bgnbd_assumes()

    assert rhythmic.customers > 0 and rhythmic.rhythm_gate
    assert as_bgnbd.customers > 0 and not as_bgnbd.rhythm_gate
