"""How well the churn ranking finds who stops buying, on public retail histories, beside
BG/NBD and beside days since the last order.

    python -m bench.churn_quality                  # every dataset, cutoff and horizon
    python -m bench.churn_quality --split tune     # the half the defaults were tuned on
    python -m bench.churn_quality --json out.json  # also every figure as JSON
    python -m bench.churn_quality --ablation       # each order signal left out in turn

For each dataset, cutoff and horizon: the customers who had bought by the cutoff are
ranked as of the cutoff three ways, and each ranking is judged by ROC AUC against
"bought nothing within the horizon after the cutoff":

* ours: the alerts domain as the platform scores (``assess`` with the default rules and
  the tenant's typical repeat interval as of the cutoff, ordered by ``rank_key``; every
  transaction row is an order, as the projector would record it);
* BG/NBD: fitted on the same customers' purchases up to the cutoff (same-day purchases
  as one, as ``lifetimes`` summarises them), ranked by expected purchases within the
  horizon, fewest first;
* days since the last order, longest first.

CDNOW's customers are split in two by id: the odd half (``tune``) is what the default
rules were tuned on, at one cutoff; the even half (``held-out``) and every other cutoff
are what the figures in BENCHMARKS.md report.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from bench import bgnbd, retail_data
from bench.retail_data import Transactions
from libs.events.catalog.alerts import ChurnRules
from services.alerts.domain.backtest import roc_auc
from services.alerts.domain.facts import Fact, FactKind, as_of
from services.alerts.domain.risk import assess, rank_key
from services.alerts.domain.rules import default_rules
from services.alerts.domain.signals import tenant_context


def _day(text: str) -> datetime:
    # The end of the day: a purchase on the cutoff's day is before the cutoff.
    return datetime.fromisoformat(text).replace(tzinfo=UTC) + timedelta(days=1, seconds=-1)


@dataclass(frozen=True)
class Dataset:
    name: str
    load: Callable[[], Transactions]
    # (cutoff, horizons in days): each horizon ends within the data.
    cutoffs: tuple[tuple[str, tuple[int, ...]], ...]
    keep: Callable[[str], bool] = lambda _: True


CDNOW_CUTOFFS = (
    ("1997-06-30", (90, 180, 365)),
    ("1997-09-30", (90, 180, 273)),
    ("1997-12-31", (90, 181)),
    ("1998-03-31", (91,)),
)
DATASETS = {
    "tune": Dataset(
        "CDNOW odd ids (tuning)",
        retail_data.cdnow,
        (("1997-09-30", (180,)),),
        keep=lambda c: int(c) % 2 == 1,
    ),
    "held-out": Dataset(
        "CDNOW even ids (held out)",
        retail_data.cdnow,
        CDNOW_CUTOFFS,
        keep=lambda c: int(c) % 2 == 0,
    ),
    "cdnow": Dataset("CDNOW, all 23,570 customers", retail_data.cdnow, CDNOW_CUTOFFS),
    "example": Dataset(
        "lifetimes' example log (generated)",
        retail_data.lifetimes_example,
        (("2014-09-30", (91,)), ("2014-06-30", (90, 183))),
    ),
}


@dataclass(frozen=True)
class Figures:
    dataset: str
    cutoff: str
    horizon_days: int
    customers: int
    churned: int
    ours: float
    bgnbd: float
    days_since: float
    bgnbd_implementation: str
    seconds_ours: float
    seconds_bgnbd: float

    @property
    def beats(self) -> bool:
        return self.ours > self.bgnbd


def _facts(customer: str, times: Sequence[datetime]) -> list[Fact]:
    return [
        Fact(FactKind.ORDER, at, f"{customer}-{i}", ref=f"{customer}-{i}")
        for i, at in enumerate(times)
    ]


def our_scores(history: Transactions, cutoff: datetime, rules: ChurnRules) -> dict[str, float]:
    """Each customer's place in our ranking as a score (higher: more at risk)."""
    facts = {c: _facts(c, [t for t in times if t <= cutoff]) for c, times in history.items()}
    context = tenant_context([as_of(f, cutoff) for f in facts.values()], cutoff)
    risks = [assess(c, f, rules, cutoff, context) for c, f in facts.items()]
    risks.sort(key=rank_key)
    return {r.customer_id: float(len(risks) - i) for i, r in enumerate(risks)}


def bgnbd_scores(
    history: Transactions, cutoff: datetime, horizon: int, prefer: str
) -> tuple[dict[str, float], str]:
    """Fewer expected purchases within the horizon: more at risk."""
    ids, summary, model = bgnbd_model(history, cutoff, prefer)
    expected = model.expected(summary, horizon / 7)
    return dict(zip(ids, (-float(e) for e in expected), strict=True)), model.implementation


def bgnbd_model(
    history: Transactions, cutoff: datetime, prefer: str = "lifetimes"
) -> tuple[list[str], bgnbd.Summary, bgnbd.LifetimesModel | bgnbd.BgNbd]:
    """BG/NBD fitted on the customers' purchase days by ``cutoff`` (weeks)."""
    ids = sorted(history)
    origin = min(t for times in history.values() for t in times)
    days = [sorted({(t - origin).days for t in history[c] if t <= cutoff}) for c in ids]
    at_cutoff = (cutoff - origin).days
    summary = bgnbd.summary(days, [at_cutoff] * len(ids))
    return ids, summary, bgnbd.fit(summary, prefer)


def judge(
    name: str,
    history: Transactions,
    cutoff_text: str,
    horizon: int,
    rules: ChurnRules,
    prefer: str = "lifetimes",
) -> Figures:
    cutoff = _day(cutoff_text)
    end = cutoff + timedelta(days=horizon)
    judged = {c: times for c, times in history.items() if times[0] <= cutoff}
    churned = {c: not any(cutoff < t <= end for t in times) for c, times in judged.items()}
    started = time.perf_counter()
    ours = our_scores(judged, cutoff, rules)
    mid = time.perf_counter()
    theirs, implementation = bgnbd_scores(judged, cutoff, horizon, prefer)
    done = time.perf_counter()
    ids = sorted(judged)
    labels = [churned[c] for c in ids]

    def auc(scores: dict[str, float]) -> float:
        value = roc_auc([scores[c] for c in ids], labels)
        return round(value, 4) if value is not None else float("nan")

    recency = {c: (cutoff - max(t for t in judged[c] if t <= cutoff)).total_seconds() for c in ids}
    return Figures(
        name,
        cutoff_text,
        horizon,
        len(ids),
        sum(labels),
        auc(ours),
        auc(theirs),
        auc(recency),
        implementation,
        round(mid - started, 2),
        round(done - mid, 2),
    )


def run(
    splits: Sequence[str],
    rules: ChurnRules | None = None,
    prefer: str = "lifetimes",
    log: Callable[[str], None] = lambda _: None,
) -> list[Figures]:
    rules = rules or default_rules()
    out = []
    loaded: dict[Callable[[], Transactions], Transactions] = {}
    for split in splits:
        dataset = DATASETS[split]
        if dataset.load not in loaded:
            loaded[dataset.load] = dataset.load()
        history = {c: t for c, t in loaded[dataset.load].items() if dataset.keep(c)}
        for cutoff, horizons in dataset.cutoffs:
            for horizon in horizons:
                figures = judge(split, history, cutoff, horizon, rules, prefer)
                log(row(figures))
                out.append(figures)
    return out


HEADER = (
    "| data | cutoff | horizon | customers | bought nothing | ours | BG/NBD "
    "| days since last order | ours - BG/NBD |\n|---|---|---:|---:|---:|---:|---:|---:|---:|"
)


def row(f: Figures) -> str:
    return (
        f"| {f.dataset} | {f.cutoff} | {f.horizon_days} d | {f.customers:,} | "
        f"{f.churned / f.customers:.1%} | **{f.ours:.4f}** | {f.bgnbd:.4f} | "
        f"{f.days_since:.4f} | {f.ours - f.bgnbd:+.4f} |"
    )


# The signals a purchase log can fire (the others read complaints, contracts, NPS...).
ORDER_SIGNALS = ("order_overdue", "order_frequency_drop")


def toggled(rules: ChurnRules, signal: str) -> ChurnRules:
    """The rules with ``signal`` turned off if it is on, on if it is off."""
    changed = dict(rules.signals)
    rule = changed[signal]  # type: ignore[index]
    changed[signal] = rule.model_copy(update={"enabled": not rule.enabled})  # type: ignore[index]
    return rules.model_copy(update={"signals": changed})


def ablation(split: str, log: Callable[[str], None] = lambda _: None) -> list[dict[str, Any]]:
    """Each order signal's place earned: AUC with the default rules, and with the
    signal toggled (left out if on by default, put in if off), on the same customers,
    cutoffs and horizons (BG/NBD is not fitted: not compared)."""
    dataset = DATASETS[split]
    history = {c: t for c, t in dataset.load().items() if dataset.keep(c)}
    rules = default_rules()
    out = []
    names = [
        f"{'without' if rules.signals[s].enabled else 'with'} {s}"  # type: ignore[index]
        for s in ORDER_SIGNALS
    ]
    log(
        "| cutoff | horizon | default rules | "
        + " | ".join(names)
        + " |\n|---|---:|---:|"
        + "---:|" * len(ORDER_SIGNALS)
    )
    for cutoff_text, horizons in dataset.cutoffs:
        cutoff = _day(cutoff_text)
        judged = {c: times for c, times in history.items() if times[0] <= cutoff}
        ids = sorted(judged)
        scores = {"all": our_scores(judged, cutoff, rules)}
        for signal in ORDER_SIGNALS:
            scores[signal] = our_scores(judged, cutoff, toggled(rules, signal))
        for horizon in horizons:
            end = cutoff + timedelta(days=horizon)
            labels = [not any(cutoff < t <= end for t in judged[c]) for c in ids]
            aucs = {
                name: round(roc_auc([s[c] for c in ids], labels) or float("nan"), 4)
                for name, s in scores.items()
            }
            out.append({"cutoff": cutoff_text, "horizon_days": horizon, "auc": aucs})
            log(
                f"| {cutoff_text} | {horizon} d | {aucs['all']:.4f} | "
                + " | ".join(f"{aucs[s]:.4f} ({aucs[s] - aucs['all']:+.4f})" for s in ORDER_SIGNALS)
                + " |"
            )
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--split",
        default="tune,held-out,example",
        help=f"comma-separated, of {', '.join(DATASETS)}",
    )
    parser.add_argument("--bgnbd", default="lifetimes", choices=("lifetimes", "scipy"))
    parser.add_argument("--json", default="")
    parser.add_argument("--ablation", action="store_true", help="each order signal left out")
    args = parser.parse_args(argv)
    if args.ablation:
        found = ablation(args.split if "," not in args.split else "cdnow", log=print)
        if args.json:
            with open(args.json, "w") as out:
                json.dump(found, out, indent=1)
        return 0
    print(HEADER)
    figures = run(
        [s.strip() for s in args.split.split(",") if s.strip()], prefer=args.bgnbd, log=print
    )
    implementations = sorted({f.bgnbd_implementation for f in figures})
    beaten = sum(f.beats for f in figures)
    print(
        f"\nBG/NBD by {', '.join(implementations)}; ours above BG/NBD in {beaten} of "
        f"{len(figures)} (cutoff, horizon) pairs; mean AUC ours "
        f"{np.mean([f.ours for f in figures]):.4f}, BG/NBD "
        f"{np.mean([f.bgnbd for f in figures]):.4f}, days since "
        f"{np.mean([f.days_since for f in figures]):.4f}"
    )
    if args.json:
        with open(args.json, "w") as out:
            json.dump([asdict(f) for f in figures], out, indent=1)
    return 0 if beaten == len(figures) else 1


if __name__ == "__main__":
    sys.exit(main())
