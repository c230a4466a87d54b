"""A customer's churn risk: the score 0-100, its level and the reasons behind it.

The score is the sum of the fired signals' contributions (weight x strength), capped
at 100; reasons come strongest first. Ties in ranking are broken by how long the
customer has gone without buying, so customers at one score still rank sensibly.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from libs.events.catalog.alerts import ChurnRules, Reason, RiskLevel
from services.alerts.domain.cadence import buying
from services.alerts.domain.facts import Fact, as_of
from services.alerts.domain.signals import SIGNALS, Context
from services.alerts.domain.value import Worth, worth


@dataclass(frozen=True, slots=True)
class ChurnRisk:
    customer_id: str
    score: int
    level: RiskLevel
    reasons: tuple[Reason, ...]
    # Days since the last order (None: never bought).
    days_since_order: float | None = None
    # The lapse index (domain/cadence.py; None: never bought): the tie-breaker.
    lapse: float | None = None
    last_order_at: datetime | None = None
    # What the customer is worth: the chance it buys nothing in the next 90 days, its
    # predicted value and their product (decision 0101).
    worth: Worth = field(default_factory=Worth)


# Every signal and reminder counts time in days: a customer's assessment, unchanged by
# any event, is made again a day later (sooner when a followed task falls due).
REVIEW_AFTER = timedelta(days=1)


def next_review(now: datetime, task_due_times: Iterable[datetime] = ()) -> datetime:
    """When an assessment made at ``now`` is due again with time alone: a day later,
    or just after the first open task falls due (its reminder)."""
    due = [t for t in task_due_times if t >= now]
    review = now + REVIEW_AFTER
    return min(review, min(due) + timedelta(microseconds=1)) if due else review


def level_of(score: int, rules: ChurnRules) -> RiskLevel:
    if score >= rules.high_from:
        return "high"
    if score >= rules.medium_from:
        return "medium"
    if score >= rules.low_from:
        return "low"
    return "none"


def assess(
    customer_id: str,
    facts: Iterable[Fact],
    rules: ChurnRules,
    when: datetime,
    context: Context | None = None,
) -> ChurnRisk:
    """The risk as the platform would have scored it at ``when``, from the facts
    that had happened by then."""
    folded = as_of(facts, when)
    context = context or Context(rules.typical_repeat_days)
    reasons = []
    for signal, evaluate in SIGNALS.items():
        rule = rules.signals.get(signal)
        if rule is None or not rule.enabled or rule.weight == 0:
            continue
        finding = evaluate(folded, rule, context)
        if finding is None:
            continue
        contribution = max(1, round(rule.weight * finding.strength))
        reasons.append(
            Reason(
                signal=signal,
                contribution=min(100, contribution),
                sentence=finding.sentence,
                event_ids=list(finding.event_ids),
                figures=dict(finding.figures),
            )
        )
    reasons.sort(key=lambda r: (-r.contribution, r.signal))
    score = min(100, sum(r.contribution for r in reasons))
    last = folded.last_order
    days = None if last is None else (when - last.placed_at).total_seconds() / 86400
    bought = buying([o.placed_at for o in folded.orders], when)
    return ChurnRisk(
        customer_id,
        score,
        level_of(score, rules),
        tuple(reasons),
        days,
        lapse=context.lapse.index(bought) if bought is not None else None,
        last_order_at=None if last is None else last.placed_at,
        worth=worth(customer_id, folded, context.lapse, context.value),
    )


def rank_key(risk: ChurnRisk) -> tuple[int, float, float, str]:
    """Highest score first; at one score, the likelier lapsed buyer first (the lapse
    index), then the longest without an order."""
    lapse = risk.lapse if risk.lapse is not None else -math.inf
    days = risk.days_since_order if risk.days_since_order is not None else -1.0
    return (-risk.score, -lapse, -days, risk.customer_id)


def value_key(risk: ChurnRisk) -> tuple[int, int, float, float, str]:
    """The largest revenue at risk first (unknown: 0); then as ``rank_key``."""
    return (-(risk.worth.revenue_at_risk or 0), *rank_key(risk))


def rose_to_high(previous: RiskLevel | None, now: RiskLevel) -> bool:
    """A rise into high: once per rise, never again while it stays high."""
    return now == "high" and previous != "high"
