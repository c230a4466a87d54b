"""Buyer models for repeat purchases: BG/NBD (Fader, Hardie & Lee 2005) for how many
purchases a customer will make, Gamma-Gamma (Fader, Hardie & Lee 2005b) for what each
will be worth, both fitted by maximum likelihood.

Pure Python (``math.lgamma`` and a Nelder-Mead search over the log of the parameters),
so a service needs no numerical stack. Identical customer summaries are weighed once,
so a fit costs the number of distinct summaries, not of customers. Analytics predicts
CLV with them; alerts weighs BG/NBD's expected purchases among its lapse shapes.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

Vector = list[float]


def nelder_mead(f: Callable[[Vector], float], start: Vector, steps: int = 600) -> Vector:
    """The minimum of ``f`` near ``start`` (standard reflection/expansion/contraction)."""
    n = len(start)
    simplex = [list(start)] + [
        [v + (0.5 if i == j else 0.0) for j, v in enumerate(start)] for i in range(n)
    ]
    values = [f(p) for p in simplex]
    for _ in range(steps):
        order = sorted(range(n + 1), key=lambda i: values[i])
        simplex, values = [simplex[i] for i in order], [values[i] for i in order]
        if abs(values[-1] - values[0]) < 1e-9 * (1 + abs(values[0])):
            break
        centre = [sum(p[j] for p in simplex[:-1]) / n for j in range(n)]
        worst = simplex[-1]
        reflected = [c + (c - w) for c, w in zip(centre, worst, strict=True)]
        fr = f(reflected)
        if fr < values[0]:
            expanded = [c + 2 * (c - w) for c, w in zip(centre, worst, strict=True)]
            fe = f(expanded)
            simplex[-1], values[-1] = (expanded, fe) if fe < fr else (reflected, fr)
        elif fr < values[-2]:
            simplex[-1], values[-1] = reflected, fr
        else:
            contracted = [c + 0.5 * (w - c) for c, w in zip(centre, worst, strict=True)]
            fc = f(contracted)
            if fc < values[-1]:
                simplex[-1], values[-1] = contracted, fc
            else:
                best = simplex[0]
                simplex = [best] + [
                    [b + 0.5 * (v - b) for b, v in zip(best, p, strict=True)] for p in simplex[1:]
                ]
                values = [values[0]] + [f(p) for p in simplex[1:]]
    return simplex[min(range(n + 1), key=lambda i: values[i])]


def _logaddexp(a: float, b: float) -> float:
    high = max(a, b)
    return high + math.log(math.exp(a - high) + math.exp(b - high))


@dataclass(frozen=True, slots=True)
class BgNbd:
    r: float
    alpha: float
    a: float
    b: float

    def log_likelihood(self, x: int, t_x: float, age: float) -> float:
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        common = (
            math.lgamma(r + x)
            - math.lgamma(r)
            + r * math.log(alpha)
            + math.lgamma(a + b)
            + math.lgamma(b + x)
            - math.lgamma(b)
            - math.lgamma(a + b + x)
        )
        stays = -(r + x) * math.log(alpha + age)
        if x == 0:
            return common + stays
        left = math.log(a) - math.log(b + x - 1) - (r + x) * math.log(alpha + t_x)
        return common + _logaddexp(stays, left)

    def expected_orders(self, x: int, t_x: float, age: float, horizon: float) -> float:
        """Orders expected in the next ``horizon`` weeks of a customer seen so far."""
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        if abs(a - 1) < 1e-6:  # the closed form's singular point: step off it
            a += 2e-6
        z = horizon / (alpha + age + horizon)
        hyper = _hyp2f1(r + x, b + x, a + b + x - 1, z)
        head = (a + b + x - 1) / (a - 1)
        body = 1 - ((alpha + age) / (alpha + age + horizon)) ** (r + x) * hyper
        tail = 1.0
        if x > 0:
            tail += a / (b + x - 1) * ((alpha + age) / (alpha + t_x)) ** (r + x)
        expected: float = head * body / tail
        return max(expected, 0.0)


def _hyp2f1(a: float, b: float, c: float, z: float, terms: int = 5000) -> float:
    total, term = 1.0, 1.0
    for n in range(terms):
        term *= (a + n) * (b + n) / ((c + n) * (n + 1)) * z
        total += term
        if abs(term) < 1e-12 * abs(total):
            break
    return total


@dataclass(frozen=True, slots=True)
class GammaGamma:
    p: float
    q: float
    v: float

    def log_likelihood(self, x: int, value: float) -> float:
        p, q, v = self.p, self.q, self.v
        return (
            math.lgamma(p * x + q)
            - math.lgamma(p * x)
            - math.lgamma(q)
            + q * math.log(v)
            + (p * x - 1) * math.log(value)
            + p * x * math.log(x)
            - (p * x + q) * math.log(x * value + v)
        )

    def expected_value(self, x: int, value: float) -> float:
        """A customer's expected order value, its own mean shrunk to the tenant's."""
        p, q, v = self.p, self.q, self.v
        if q <= 1:
            return value
        return (p * (v + x * value)) / (p * x + q - 1)


# A weak pull of each log-parameter towards 0: a handful of customers (all still
# buying, say) has a degenerate maximum (no dropout at all); thousands outweigh it.
PENALTY = 0.5


def _penalised(f: Callable[[Vector], float]) -> Callable[[Vector], float]:
    def guarded(logs: Vector) -> float:
        if any(abs(v) > 30 for v in logs):
            return math.inf
        try:
            return f([math.exp(v) for v in logs]) + PENALTY * sum(v * v for v in logs)
        except (ValueError, OverflowError, ZeroDivisionError):
            return math.inf

    return guarded


def fit_bgnbd(customers: Iterable[tuple[int, float, float]]) -> BgNbd:
    """BG/NBD fitted on customers given as (repeat purchases, the last purchase's time,
    age), times in one unit from each customer's first purchase."""
    weighted = Counter((x, round(t_x, 1), round(age, 1)) for x, t_x, age in customers)

    def negative(params: Vector) -> float:
        model = BgNbd(*params)
        return -sum(n * model.log_likelihood(x, t, age) for (x, t, age), n in weighted.items())

    best = nelder_mead(_penalised(negative), [0.0, 1.0, 0.0, 0.0])
    return BgNbd(*[math.exp(v) for v in best])


def fit_gamma_gamma(customers: Iterable[tuple[int, float]]) -> GammaGamma:
    """Gamma-Gamma fitted on repeat buyers given as (purchases, mean purchase value)."""
    weighted = Counter((x, round(value, 2)) for x, value in customers if x > 1 and value > 0)

    def negative(params: Vector) -> float:
        model = GammaGamma(*params)
        return -sum(n * model.log_likelihood(x, value) for (x, value), n in weighted.items())

    best = nelder_mead(_penalised(negative), [0.0, 1.0, 3.0])
    return GammaGamma(*[math.exp(v) for v in best])


WEEK_SECONDS = 7 * 86400.0


@dataclass(frozen=True, slots=True)
class Buyer:
    """A customer as the models see it: repeat orders ``x``, the last order ``t_x`` and
    the age ``age``, in weeks from its first order, and the mean net value of its
    orders (minor units)."""

    customer_id: str
    x: int
    t_x: float
    age: float
    value: float


def buyer_of(
    customer_id: str, first: datetime, last: datetime, orders: int, net: float, until: datetime
) -> Buyer:
    """The buyer from its orders' figures: how many, the first and the last, their net
    value (refunds taken off) and the time it is seen at."""
    return Buyer(
        customer_id,
        orders - 1,
        (last - first).total_seconds() / WEEK_SECONDS,
        (until - first).total_seconds() / WEEK_SECONDS,
        max(net, 0) / orders,
    )


@dataclass(frozen=True, slots=True)
class Prediction:
    customer_id: str
    expected_orders: float
    expected_value: float

    @property
    def clv(self) -> float:
        return self.expected_orders * self.expected_value


@dataclass(frozen=True, slots=True)
class ValueModel:
    """What a buyer is predicted to be worth: BG/NBD's orders times Gamma-Gamma's value
    per order (predicted CLV, undiscounted)."""

    orders: BgNbd
    values: GammaGamma

    def predict(self, buyer: Buyer, horizon_weeks: float) -> Prediction:
        b = buyer
        return Prediction(
            b.customer_id,
            self.orders.expected_orders(b.x, b.t_x, b.age, horizon_weeks),
            self.values.expected_value(b.x + 1, b.value) if b.value > 0 else 0.0,
        )


def fit_value_model(buyers: Sequence[Buyer]) -> ValueModel:
    """Both models fitted by maximum likelihood on ``buyers``."""
    return ValueModel(
        fit_bgnbd((b.x, b.t_x, b.age) for b in buyers),
        fit_gamma_gamma((b.x + 1, b.value) for b in buyers),
    )
