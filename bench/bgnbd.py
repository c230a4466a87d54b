"""BG/NBD (Fader, Hardie and Lee 2005), the reference our churn ranking is judged against.

``lifetimes`` (``BetaGeoFitter``) is the reference implementation; it is used when it
imports. The same model is written out here with scipy (the paper's likelihood, eq. 6,
and conditional expectation, eq. 10, as ``lifetimes`` computes them) so the comparison
still runs where ``lifetimes`` does not, and so the two can be checked against each
other (``python -m bench.bgnbd``: both fits on CDNOW's published sample).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.special import betaln, gammaln, hyp2f1


@dataclass(frozen=True, slots=True)
class Summary:
    """One customer as BG/NBD sees it, in one time unit: repeat purchases (``x``), the
    age at the last purchase (``t_x``) and the age at the cutoff (``T``)."""

    x: np.ndarray
    t_x: np.ndarray
    T: np.ndarray


def _negative_ll(log_params: np.ndarray, s: Summary) -> float:
    r, alpha, a, b = np.exp(log_params)
    x, t_x, T = s.x, s.t_x, s.T
    a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    a2 = betaln(a, b + x) - betaln(a, b)
    a3 = -(r + x) * np.log(alpha + T)
    with np.errstate(divide="ignore", invalid="ignore"):
        a4 = np.where(
            x > 0,
            np.log(a) - np.log(np.maximum(b + x - 1, 1e-12)) - (r + x) * np.log(alpha + t_x),
            -np.inf,
        )
    return float(-(a1 + a2 + np.logaddexp(a3, a4)).sum())


@dataclass(frozen=True, slots=True)
class BgNbd:
    r: float
    alpha: float
    a: float
    b: float
    implementation: str

    def expected(self, s: Summary, t: float) -> np.ndarray:
        """Expected purchases in the next ``t`` units, given each customer's history."""
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        x, t_x, T = s.x, s.t_x, s.T
        hyp_term = hyp2f1(r + x, b + x, a + b + x - 1, t / (alpha + T + t))
        first = (a + b + x - 1) / (a - 1)
        second = 1 - hyp_term * ((alpha + T) / (alpha + t + T)) ** (r + x)
        numerator = first * second
        denominator = 1 + (x > 0) * (a / (b + x - 1)) * ((alpha + T) / (alpha + t_x)) ** (r + x)
        return np.asarray(numerator / denominator)

    def no_purchase(self, s: Summary, t: float) -> np.ndarray:
        return no_purchase((self.r, self.alpha, self.a, self.b), s, t)


def no_purchase(params: tuple[float, float, float, float], s: Summary, t: float) -> np.ndarray:
    """The probability of no purchase in the next ``t`` units, given each history: dead
    already, or alive and silent (a BG/NBD buyer drops out only just after a purchase,
    so a silent one stays alive; its rate is Gamma(r + x, alpha + T) given its past)."""
    r, alpha, a, b = params
    x, t_x, T = s.x, s.t_x, s.T
    with np.errstate(divide="ignore", invalid="ignore"):
        odds_dead = np.where(
            x > 0, (a / np.maximum(b + x - 1, 1e-12)) * ((alpha + T) / (alpha + t_x)) ** (r + x), 0
        )
    alive = 1 / (1 + odds_dead)
    silent = ((alpha + T) / (alpha + T + t)) ** (r + x)
    return np.asarray((1 - alive) + alive * silent)


def fit_scipy(s: Summary) -> BgNbd:
    start = np.log(np.array([1.0, 1.0, 1.0, 1.0]))
    found = minimize(
        _negative_ll,
        start,
        args=(s,),
        method="Nelder-Mead",
        options={"maxiter": 4000, "xatol": 1e-7, "fatol": 1e-7},
    )
    r, alpha, a, b = np.exp(found.x)
    return BgNbd(float(r), float(alpha), float(a), float(b), "scipy (bench/bgnbd.py)")


class LifetimesModel:
    """``lifetimes.BetaGeoFitter``, fitted and asked for expected purchases."""

    def __init__(self, s: Summary) -> None:
        from lifetimes import BetaGeoFitter

        self.fitter = BetaGeoFitter(penalizer_coef=0.0)
        self.fitter.fit(s.x, s.t_x, s.T)
        p = self.fitter.params_
        self.params = (float(p["r"]), float(p["alpha"]), float(p["a"]), float(p["b"]))
        self.implementation = "lifetimes " + _lifetimes_version()

    def expected(self, s: Summary, t: float) -> np.ndarray:
        return np.asarray(
            self.fitter.conditional_expected_number_of_purchases_up_to_time(t, s.x, s.t_x, s.T)
        )

    def no_purchase(self, s: Summary, t: float) -> np.ndarray:
        return no_purchase(self.params, s, t)


def _lifetimes_version() -> str:
    from importlib.metadata import version

    return version("lifetimes")


def fit(s: Summary, prefer: str = "lifetimes") -> LifetimesModel | BgNbd:
    """The lifetimes fitter where it imports and fits; otherwise the scipy one."""
    if prefer == "lifetimes":
        try:
            return LifetimesModel(s)
        except Exception:
            pass
    return fit_scipy(s)


def summary(
    days: Sequence[Sequence[float]], cutoff_days: Sequence[float], unit: float = 7.0
) -> Summary:
    """From each customer's distinct purchase days (relative to any origin, sorted) and
    the cutoff on the same scale: lifetimes' ``summary_data_from_transaction_data``."""
    x = np.array([len(d) - 1 for d in days], dtype=float)
    t_x = np.array([(d[-1] - d[0]) / unit for d in days])
    T = np.array([(c - d[0]) / unit for d, c in zip(days, cutoff_days, strict=True)])
    return Summary(x, t_x, T)


if __name__ == "__main__":
    from bench.retail_data import cdnow_sample_summary

    s = cdnow_sample_summary()
    own = fit_scipy(s)
    print(f"scipy:     r={own.r:.4f} alpha={own.alpha:.4f} a={own.a:.4f} b={own.b:.4f}")
    try:
        ref = LifetimesModel(s)
        print(
            f"{ref.implementation}: r={ref.params[0]:.4f} alpha={ref.params[1]:.4f} "
            f"a={ref.params[2]:.4f} b={ref.params[3]:.4f}"
        )
        gap = np.max(np.abs(ref.expected(s, 39) - own.expected(s, 39)))
        print(f"largest difference in expected purchases over 39 weeks: {gap:.2e}")
    except Exception as e:
        print(f"lifetimes unavailable: {e!r}")
