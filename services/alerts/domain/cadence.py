"""How likely a buyer has lapsed, learnt from the tenant's own history.

A customer's *lapse index* combines what their orders say, as of a time:

    log(days since the last order + c) - beta * log(repeat purchases + 1)
        + gamma * log(days since the first order + c)
        + delta * log((days since the last order + c) / (own rhythm in days + c))

Longer silence raises it; many repeat purchases lower it when ``beta`` > 0 (a regular
buyer who pauses is likelier to come back); ``gamma`` weighs the customer's age;
``delta`` the silence against the buyer's own rhythm (0 for a one-time buyer).
Which ``c``, ``beta``, ``gamma`` and ``delta`` rank best differs between businesses, so each
tenant's are chosen on its own past: as of ``when`` minus ``HORIZON_DAYS``, every
customer who had bought by then is indexed, and the choice is the one whose ROC AUC
against "bought nothing in the ``HORIZON_DAYS`` since" is highest. The same backtest
gives, for bands of the index, the share who then bought nothing: the probability a
signal's strength is read from. Only orders placed by ``when`` are read, so scoring
as of a past day learns only from what was known then (decision 0055).

BG/NBD joins the shapes (decision 0089): fitted on the same buyers, it ranks by the
purchases it expects in the horizon (fewest first). The best shape, BG/NBD alone and
blends of the two are backtested alike; the best wins. Where a tenant's customers buy
the way BG/NBD assumes it adds what the shapes miss; where they do not, a shape stays.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from statistics import fmean, median, pstdev

from libs.buyer_models import BgNbd, fit_bgnbd
from services.alerts.domain.backtest import roc_auc

HORIZON_DAYS = 90
# Fewer judged customers than this (or no churner, or no stayer): the default shape.
MIN_CUSTOMERS = 200
# At most this many customers calibrate a tenant (every k-th by id): bounds the cost.
SAMPLE = 20_000
# Bands of the index the probability is read from: 20, up to 50 for a large tenant
# (at least 400 judged buyers a band). On CDNOW's 20,000 buyers 50 bands took the
# Brier score from 0.1102 to 0.1095 (decision 0101); 100 gained nothing more.
BANDS = 20
MAX_BANDS = 50
BUYERS_PER_BAND = 400
Shape = tuple[float, float, float, float]  # c, beta, gamma, delta
# c = 60 lets a tenant whose buyers come back after long pauses weigh the first months
# of silence less: CDNOW's own past chose it at three of four cutoffs (1997-09-30 on),
# taking the replay's mean AUC from 0.7877 to 0.7881 in-process; lifetimes' example log
# chose as before.
GRID: tuple[Shape, ...] = tuple(
    itertools.product((7.0, 30.0, 60.0), (0.0, 0.5, 1.0), (-0.5, 0.0, 0.5), (0.0, 0.5, 1.0))
)
DEFAULT_SHAPE: Shape = (30.0, 0.5, 0.0, 0.0)
# BG/NBD is fitted on at most this many of the judged buyers: its four parameters
# settle long before that, and a fit costs the number of distinct buyers.
FIT_SAMPLE = 4_000
WEEK_DAYS = 7.0
# BG/NBD's weight beside the chosen shape (z-scores), tried in turn; None: BG/NBD alone.
BLENDS: tuple[float | None, ...] = (0.5, 1.0, 2.0, None)
# A blend replaces the shape only if it ranks the tenant's past better by this much. On
# CDNOW blends won by under 0.001 and lost that out of sample; on a log that follows
# BG/NBD's assumptions they won by 0.005-0.006 and kept it (decision 0089).
BLEND_MARGIN = 0.002
# order_overdue's rule (rules.py): it fires when at least this share of buyers like the
# customer then bought nothing, or (with the rhythm gate) when the customer's silence is
# this multiple of its rhythm (a one-time buyer: of the tenant's typical repeat).
LIKELY = 0.5
RHYTHM_THRESHOLD = 1.5


@dataclass(frozen=True, slots=True)
class Buying:
    """A buyer as of a time: days since the first and the last purchase occasion, and
    the number of repeat occasions (same-day orders are one occasion)."""

    age_days: float
    silence_days: float
    repeats: int
    # The median days between its purchase occasions (None: bought once).
    rhythm_days: float | None = None


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
    gaps = [(b - a).total_seconds() / day for a, b in itertools.pairwise(seen)]
    return Buying(
        (when - seen[0]).total_seconds() / day,
        (when - seen[-1]).total_seconds() / day,
        len(seen) - 1,
        max(median(gaps), 1.0) if gaps else None,
    )


def index(b: Buying, shape: Shape) -> float:
    c, beta, gamma, delta = shape
    # delta: the silence against the buyer's own rhythm (a weekly buyer gone a month is
    # further gone than a quarterly one); 0 for a buyer who bought once.
    overdue = math.log((b.silence_days + c) / (b.rhythm_days + c)) if b.rhythm_days else 0.0
    return (
        math.log(b.silence_days + c)
        - beta * math.log(b.repeats + 1)
        + gamma * math.log(b.age_days + c)
        + delta * overdue
    )


def _in_weeks(b: Buying) -> tuple[int, float, float]:
    """The buyer as BG/NBD sees it: (repeats, the last occasion, age), in weeks from its
    first occasion, to whole days."""
    return (
        b.repeats,
        round(b.age_days - b.silence_days) / WEEK_DAYS,
        round(b.age_days) / WEEK_DAYS,
    )


def expected_purchases(model: BgNbd, b: Buying) -> float:
    """The purchase occasions BG/NBD expects of the buyer in the next ``HORIZON_DAYS``."""
    repeats, last, age = _in_weeks(b)
    return model.expected_orders(repeats, last, age, HORIZON_DAYS / WEEK_DAYS)


def _scale(values: Sequence[float]) -> tuple[float, float]:
    return fmean(values), pstdev(values) or 1.0


def _fitted(buyers: Sequence[Buying]) -> BgNbd | None:
    step = max(1, len(buyers) // FIT_SAMPLE)
    try:
        return fit_bgnbd(_in_weeks(b) for b in buyers[::step])
    except (ValueError, OverflowError, ZeroDivisionError):
        return None  # a degenerate history: the shapes alone


@dataclass(frozen=True, slots=True)
class Blend:
    """BG/NBD joined to a shape: each index as a z-score over the judged buyers, BG/NBD's
    weighed ``weight`` (None: BG/NBD alone)."""

    model: BgNbd
    weight: float | None = None
    shape_mean: float = 0.0
    shape_sd: float = 1.0
    model_mean: float = 0.0
    model_sd: float = 1.0


def model_index(model: BgNbd, b: Buying) -> float:
    """BG/NBD's lapse index: fewer purchases expected is higher (log: the blend weighs
    a customer expected to buy 0.01 times unlike one expected to buy 0.1 times)."""
    return -math.log(expected_purchases(model, b) + 1e-3)


@dataclass(frozen=True, slots=True)
class LapseModel:
    """The shape chosen for a tenant (with BG/NBD, when that ranked its past better),
    and the share of customers who bought nothing in the following ``HORIZON_DAYS`` per
    band of the index (rising: monotone by design)."""

    shape: Shape = DEFAULT_SHAPE
    edges: tuple[float, ...] = ()  # the bands' upper bounds but the last
    rates: tuple[float, ...] = ()
    customers: int = 0  # how many customers the backtest judged (0: not calibrated)
    auc: float | None = None
    blend: Blend | None = None
    # Whether a buyer past its own rhythm is warned about even when most buyers like it
    # came back: chosen on the tenant's past, whichever ranked it better (decision 0101).
    rhythm_gate: bool = False

    def index(self, b: Buying) -> float:
        blend = self.blend
        if blend is None:
            return index(b, self.shape)
        by_model = model_index(blend.model, b)
        if blend.weight is None:
            return by_model
        return (index(b, self.shape) - blend.shape_mean) / blend.shape_sd + blend.weight * (
            by_model - blend.model_mean
        ) / blend.model_sd

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
    chosen = LapseModel(best)
    model = _fitted([b for b, _ in judged])
    if model is not None:
        by_shape = [index(b, best) for b, _ in judged]
        by_model = [model_index(model, b) for b, _ in judged]
        scales = (*_scale(by_shape), *_scale(by_model))
        needed = best_auc + BLEND_MARGIN
        for weight in BLENDS:
            candidate = LapseModel(best, blend=Blend(model, weight, *scales))
            auc = roc_auc([candidate.index(b) for b, _ in judged], labels)
            if auc is not None and auc > needed and auc > best_auc + 1e-9:
                chosen, best_auc = candidate, auc
    scored = sorted((chosen.index(b), churned) for b, churned in judged)
    n = len(scored)
    bands = min(MAX_BANDS, max(BANDS, n // BUYERS_PER_BAND))
    cuts = [n * k // bands for k in range(bands + 1)]
    edges, rates, weights = [], [], []
    for lo, hi in itertools.pairwise(cuts):
        if hi <= lo:
            continue
        part = scored[lo:hi]
        rates.append(sum(c for _, c in part) / len(part))
        weights.append(len(part))
        edges.append(part[-1][0])
    learnt = LapseModel(
        chosen.shape,
        tuple(edges[:-1]),
        tuple(_rising(rates, weights)),
        n,
        round(best_auc, 4),
        chosen.blend,
    )
    gated = _gated_auc(learnt, judged)
    return replace(learnt, rhythm_gate=gated is not None and gated > best_auc + 1e-9)


def past_rhythm(b: Buying, typical: float | None, threshold: float = RHYTHM_THRESHOLD) -> bool:
    """The buyer's silence is ``threshold`` times its rhythm (one-time: ``typical``)."""
    cadence = b.rhythm_days if b.rhythm_days is not None else typical
    return cadence is not None and b.silence_days / cadence >= threshold


def _gated_auc(model: LapseModel, judged: Sequence[tuple[Buying, bool]]) -> float | None:
    """How the ranking would have judged the tenant's past with the rhythm gate on: the
    warned first (the likely lapsed, and those past their rhythm), by the measured
    share, then by the index."""
    rhythms = [b.rhythm_days for b, _ in judged if b.rhythm_days is not None]
    typical = median(rhythms) if rhythms else None
    keyed = []
    for b, churned in judged:
        rate = model.probability(b) or 0.0
        warned = rate >= LIKELY or past_rhythm(b, typical)
        keyed.append(((warned, rate if warned else 0.0, model.index(b)), churned))
    keyed.sort(key=lambda k: k[0])
    return roc_auc([float(i) for i in range(len(keyed))], [c for _, c in keyed])
