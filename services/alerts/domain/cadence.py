"""How likely a buyer has lapsed, learnt from the tenant's own history.

A customer's *lapse index* combines what their orders say, as of a time:

    log(days since the last order + c) - beta * log(repeat purchases + 1)
                                        + gamma * log(days since the first order + c)

Longer silence raises it; many repeat purchases lower it when ``beta`` > 0 (a regular
buyer who pauses is likelier to come back); ``gamma`` weighs the customer's age.
Which ``c``, ``beta`` and ``gamma`` rank best differs between businesses, so each
tenant's are chosen on its own past: as of ``when`` minus ``HORIZON_DAYS``, every
customer who had bought by then is indexed, and the choice is the one whose ROC AUC
against "bought nothing in the ``HORIZON_DAYS`` since" is highest. The same backtest
gives, for bands of the index, the share who then bought nothing: the probability a
signal's strength is read from. Only orders placed by ``when`` are read, so scoring
as of a past day learns only from what was known then (decision 0055).
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from statistics import median

from services.alerts.domain.backtest import roc_auc

HORIZON_DAYS = 90
# Fewer judged customers than this (or no churner, or no stayer): the default shape.
MIN_CUSTOMERS = 200
# At most this many customers calibrate a tenant (every k-th by id): bounds the cost.
SAMPLE = 20_000
BANDS = 20
GRID: tuple[tuple[float, float, float], ...] = tuple(
    itertools.product((7.0, 30.0), (0.0, 0.5, 1.0), (-0.5, 0.0, 0.5))
)
DEFAULT_SHAPE = (30.0, 0.5, 0.0)


@dataclass(frozen=True, slots=True)
class Buying:
    """A buyer as of a time: days since the first and the last purchase occasion, and
    the number of repeat occasions (same-day orders are one occasion)."""

    age_days: float
    silence_days: float
    repeats: int


def occasions(times: Sequence[datetime]) -> list[datetime]:
    """Purchase occasions from order times in time order: orders less than a day after
    the occasion's first are one basket split in several orders, not a repeat."""
    found: list[datetime] = []
    for at in times:
        if not found or at - found[-1] >= timedelta(days=1):
            found.append(at)
    return found


def cadence_of(times: Sequence[datetime]) -> float | None:
    """The median days between purchase occasions (None: fewer than two occasions)."""
    seen = occasions(times)
    if len(seen) < 2:
        return None
    gaps = [(b - a).total_seconds() / 86400 for a, b in itertools.pairwise(seen)]
    return max(median(gaps), 1.0)


def buying(times: Sequence[datetime], when: datetime) -> Buying | None:
    """The buyer as of ``when`` from its order times (sorted), None if it never bought."""
    seen = occasions([t for t in times if t <= when])
    if not seen:
        return None
    day = 86400.0
    return Buying(
        (when - seen[0]).total_seconds() / day,
        (when - seen[-1]).total_seconds() / day,
        len(seen) - 1,
    )


def index(b: Buying, shape: tuple[float, float, float]) -> float:
    c, beta, gamma = shape
    return (
        math.log(b.silence_days + c)
        - beta * math.log(b.repeats + 1)
        + gamma * math.log(b.age_days + c)
    )


@dataclass(frozen=True, slots=True)
class LapseModel:
    """The shape chosen for a tenant, and the share of customers who bought nothing in
    the following ``HORIZON_DAYS`` per band of the index (rising: monotone by design)."""

    shape: tuple[float, float, float] = DEFAULT_SHAPE
    edges: tuple[float, ...] = ()  # the bands' upper bounds but the last
    rates: tuple[float, ...] = ()
    customers: int = 0  # how many customers the backtest judged (0: not calibrated)
    auc: float | None = None

    def index(self, b: Buying) -> float:
        return index(b, self.shape)

    def probability(self, b: Buying) -> float | None:
        """The share of customers like this one who bought nothing in the following
        ``HORIZON_DAYS``, as the tenant's history measured it (None: not calibrated)."""
        if not self.rates:
            return None
        return self.rates[bisect.bisect_left(self.edges, self.index(b))]


def _rising(rates: list[float], weights: list[int]) -> list[float]:
    """Pool adjacent violators: the closest non-decreasing sequence (weighted)."""
    blocks: list[list[float]] = []  # [mean, weight, length]
    for r, w in zip(rates, weights, strict=True):
        blocks.append([r, float(w), 1.0])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            m2, w2, n2 = blocks.pop()
            m1, w1, n1 = blocks.pop()
            blocks.append([(m1 * w1 + m2 * w2) / (w1 + w2), w1 + w2, n1 + n2])
    out: list[float] = []
    for mean, _, n in blocks:
        out += [mean] * int(n)
    return out


def calibrate(histories: Iterable[Sequence[datetime]], when: datetime) -> LapseModel:
    """Choose the tenant's shape and bands by backtesting on its own orders up to
    ``when`` (each history: one customer's order times, sorted)."""
    start = when - timedelta(days=HORIZON_DAYS)
    judged: list[tuple[Buying, bool]] = []
    for times in histories:
        before = buying(times, start)
        if before is not None:
            judged.append((before, not any(start < t <= when for t in times)))
    if len(judged) > SAMPLE:
        step = len(judged) / SAMPLE
        judged = [judged[int(i * step)] for i in range(SAMPLE)]
    labels = [churned for _, churned in judged]
    if len(judged) < MIN_CUSTOMERS or all(labels) or not any(labels):
        return LapseModel()
    best, best_auc = DEFAULT_SHAPE, -1.0
    for shape in GRID:
        auc = roc_auc([index(b, shape) for b, _ in judged], labels)
        if auc is not None and auc > best_auc + 1e-9:
            best, best_auc = shape, auc
    scored = sorted((index(b, best), churned) for b, churned in judged)
    n = len(scored)
    cuts = [n * k // BANDS for k in range(BANDS + 1)]
    edges, rates, weights = [], [], []
    for lo, hi in itertools.pairwise(cuts):
        if hi <= lo:
            continue
        part = scored[lo:hi]
        rates.append(sum(c for _, c in part) / len(part))
        weights.append(len(part))
        edges.append(part[-1][0])
    return LapseModel(
        best, tuple(edges[:-1]), tuple(_rising(rates, weights)), n, round(best_auc, 4)
    )
