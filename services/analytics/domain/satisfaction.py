"""NPS and CSAT over time and by owner or ticket category; activity per customer and
per owner. Each is a fold of dated answers or interactions in the window."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from services.analytics.domain.figure import Answer, share
from services.analytics.domain.periods import Grain, label, period_of

Breakdown = Literal["period", "owner", "category"]


@dataclass(frozen=True, slots=True)
class SurveyAnswer:
    customer_id: str
    kind: str  # "nps" | "csat"
    score: int
    at: datetime
    # The answered ticket's category (CSAT); the customer's owner at ``as_of``.
    category: str | None = None
    owner_id: str | None = None


def nps_group(score: int) -> str:
    return "promoter" if score >= 9 else "passive" if score >= 7 else "detractor"


def _key(by: Breakdown, grain: Grain) -> Callable[[SurveyAnswer], str]:
    if by == "owner":
        return lambda a: a.owner_id or "none"
    if by == "category":
        return lambda a: a.category or "none"
    return lambda a: label(period_of(a.at, grain), grain)


def nps(answers: Sequence[SurveyAnswer], by: Breakdown, grain: Grain) -> Answer:
    """Net promoter score: % promoters - % detractors, of the answers in the window."""
    chosen = [a for a in answers if a.kind == "nps"]
    groups: dict[str, list[SurveyAnswer]] = defaultdict(list)
    for answer in chosen:
        groups[_key(by, grain)(answer)].append(answer)

    def score(of: Sequence[SurveyAnswer]) -> dict[str, object]:
        promoters = sum(1 for a in of if nps_group(a.score) == "promoter")
        detractors = sum(1 for a in of if nps_group(a.score) == "detractor")
        value = round(100 * (promoters - detractors) / len(of), 2) if of else None
        return {
            "nps": value,
            "responses": len(of),
            "promoters": promoters,
            "passives": len(of) - promoters - detractors,
            "detractors": detractors,
        }

    return Answer(
        "nps",
        {"by": by, **score(chosen)},
        "NPS answers in the window: % promoters (9-10) minus % detractors (0-6)",
        table=[{by: k, **score(v)} for k, v in sorted(groups.items())],
        customers=[
            {
                "customer_id": a.customer_id,
                "at": a.at.isoformat(),
                "score": a.score,
                "group": nps_group(a.score),
            }
            for a in sorted(chosen, key=lambda a: (a.customer_id, a.at))
        ],
    )


def csat(answers: Sequence[SurveyAnswer], by: Breakdown, grain: Grain) -> Answer:
    """Customer satisfaction: the share of answers of 4 or 5, and the mean score."""
    chosen = [a for a in answers if a.kind == "csat"]
    groups: dict[str, list[SurveyAnswer]] = defaultdict(list)
    for answer in chosen:
        groups[_key(by, grain)(answer)].append(answer)

    def score(of: Sequence[SurveyAnswer]) -> dict[str, object]:
        satisfied = sum(1 for a in of if a.score >= 4)
        return {
            "csat": share(satisfied, len(of)),
            "mean_score": share(sum(a.score for a in of), len(of)),
            "responses": len(of),
            "satisfied": satisfied,
        }

    return Answer(
        "csat",
        {"by": by, **score(chosen)},
        "CSAT answers in the window: the share scoring 4 or 5 (of 1-5), and the mean",
        table=[{by: k, **score(v)} for k, v in sorted(groups.items())],
        customers=[
            {
                "customer_id": a.customer_id,
                "at": a.at.isoformat(),
                "score": a.score,
                "category": a.category,
            }
            for a in sorted(chosen, key=lambda a: (a.customer_id, a.at))
        ],
    )


@dataclass(frozen=True, slots=True)
class CustomerActivity:
    customer_id: str
    owner_id: str | None
    interactions: int


def activity(rows: Sequence[CustomerActivity]) -> Answer:
    """Interactions logged in the window, per customer and per owner (its customers')."""
    owners: dict[str, list[CustomerActivity]] = defaultdict(list)
    for row in rows:
        owners[row.owner_id or "none"].append(row)
    total = sum(r.interactions for r in rows)
    return Answer(
        "activity",
        {
            "interactions": total,
            "customers": len(rows),
            "per_customer": share(total, len(rows)),
        },
        "interactions logged in the window (by occurred_at), per customer of the population "
        "and per owner of those customers at as_of",
        table=[
            {
                "owner_id": owner,
                "customers": len(of),
                "interactions": sum(r.interactions for r in of),
                "per_customer": share(sum(r.interactions for r in of), len(of)),
            }
            for owner, of in sorted(owners.items())
        ],
        customers=[
            {"customer_id": r.customer_id, "owner_id": r.owner_id, "interactions": r.interactions}
            for r in sorted(rows, key=lambda r: r.customer_id)
        ],
    )
