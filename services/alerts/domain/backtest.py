"""How well the churn ranking did: scored as of a cutoff, compared with who then
bought nothing within the horizon, beside the plain "days since last order" ranking.

Only customers who had bought by the cutoff are judged: one who never bought cannot
stop buying.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from libs.events.catalog.alerts import RiskLevel

LEVELS: tuple[RiskLevel, ...] = ("high", "medium", "low")


@dataclass(frozen=True, slots=True)
class Judged:
    """One customer: its place in our ranking (0 = most at risk), its days since the
    last order at the cutoff, its level, and whether it then bought nothing."""

    customer_id: str
    rank: int
    days_since_order: float
    level: RiskLevel
    churned: bool


def roc_auc(scores: Sequence[float], labels: Sequence[bool]) -> float | None:
    """The chance that a churner scores above a customer who stayed (ties count half):
    the Mann-Whitney statistic, from average ranks."""
    positives = sum(labels)
    negatives = len(labels) - positives
    if positives == 0 or negatives == 0:
        return None
    order = sorted(range(len(scores)), key=lambda i: scores[i])
    ranks = [0.0] * len(scores)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and scores[order[j + 1]] == scores[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    positive_ranks = sum(r for r, y in zip(ranks, labels, strict=True) if y)
    return (positive_ranks - positives * (positives + 1) / 2) / (positives * negatives)


def lift_by_decile(ranked_labels: Sequence[bool]) -> list[float]:
    """Churn rate of each tenth of the ranking (most at risk first) over the overall rate."""
    n = len(ranked_labels)
    overall = sum(ranked_labels) / n if n else 0.0
    if not overall:
        return []
    lifts = []
    for d in range(10):
        part = ranked_labels[d * n // 10 : (d + 1) * n // 10]
        lifts.append(round(sum(part) / len(part) / overall, 3) if part else 0.0)
    return lifts


def _figures(scores: Sequence[float], labels: Sequence[bool]) -> dict[str, object]:
    ranked = [y for _, y in sorted(zip(scores, labels, strict=True), key=lambda p: -p[0])]
    auc = roc_auc(scores, labels)
    return {
        "roc_auc": None if auc is None else round(auc, 4),
        "lift_by_decile": lift_by_decile(ranked),
    }


def report(judged: Sequence[Judged]) -> dict[str, object]:
    labels = [j.churned for j in judged]
    ours = _figures([-float(j.rank) for j in judged], labels)
    levels = {}
    churners = sum(labels)
    for i, level in enumerate(LEVELS):
        at_or_above = set(LEVELS[: i + 1])
        flagged = [j for j in judged if j.level in at_or_above]
        hits = sum(j.churned for j in flagged)
        levels[level] = {
            "flagged": len(flagged),
            "precision": round(hits / len(flagged), 4) if flagged else None,
            "recall": round(hits / churners, 4) if churners else None,
        }
    ours["levels"] = levels
    return {
        "customers": len(judged),
        "churned": churners,
        "ours": ours,
        "days_since_last_order": _figures([j.days_since_order for j in judged], labels),
    }
