"""What a new assessment of a customer sets off: the events of a level that moved.

A rise into high raises the risk once. A rise into a level the tenant alerts on
(medium and high by default) opens an alert, and into one it follows up (high by
default) asks for a follow-up task for the owner; leaving the alert's level closes
it. Ids are derived, not drawn at random, so the same assessment replayed (a
redelivered batch, a rebuild) names the same alert and the same task.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from libs.events.catalog import DomainEvent
from libs.events.catalog.alerts import (
    AlertClosed,
    AlertOpened,
    ChurnRiskChanged,
    ChurnRiskRaised,
    ChurnRules,
    FollowUpTaskRequested,
    RiskLevel,
)
from services.alerts.domain.risk import ChurnRisk, rose_to_high

RANK: dict[str, int] = {"none": 0, "low": 1, "medium": 2, "high": 3}
# A high risk is worth a call within a day.
FOLLOW_UP_WITHIN = timedelta(days=1)
_ALERTS = uuid.UUID("5b0f7c1e-6a43-4f4e-9a55-2f1d8a0c4e11")


@dataclass(frozen=True, slots=True)
class Standing:
    """What the service last decided about the customer."""

    level: RiskLevel
    # The customer's alerts stream version: with the tenant and customer, unique per rise.
    version: int
    open_alert_id: str | None
    owner_id: str | None
    # The level the open alert was opened at (None: the level above, as before 0047).
    open_alert_level: RiskLevel | None = None
    # The score last decided (None: not known, so any assessment is a change).
    score: int | None = None


@dataclass(frozen=True, slots=True)
class Reaction:
    events: list[DomainEvent]
    open_alert_id: str | None


def alert_id_for(tenant_id: str, customer_id: str, version: int) -> str:
    return str(uuid.uuid5(_ALERTS, f"{tenant_id}/{customer_id}/{version}"))


def task_id_for(alert_id: str) -> str:
    return str(uuid.uuid5(_ALERTS, f"task/{alert_id}"))


def react(
    tenant_id: str,
    standing: Standing,
    risk: ChurnRisk,
    now: datetime,
    rules: ChurnRules | None = None,
) -> Reaction:
    """The events of a moved score or level: the change itself; and when the level
    moved (decision 0047), a rise into a level the tenant alerts on opens an alert
    (closing a lower one still open), and asks for a follow-up when the level is one
    the tenant follows up; a fall below the open alert's level closes it."""
    rules = rules or ChurnRules(signals={})
    open_alert = standing.open_alert_id
    if risk.level == standing.level and risk.score == standing.score:
        return Reaction([], open_alert)
    reasons = list(risk.reasons)
    # Every move of the score is told, so the 360 view holds what the ranking keeps;
    # only a move of the level sets off more.
    events: list[DomainEvent] = [
        ChurnRiskChanged(
            customer_id=risk.customer_id,
            from_level=standing.level,
            to_level=risk.level,
            score=risk.score,
            reasons=reasons,
            owner_id=standing.owner_id,
            as_of=now,
            **asdict(risk.worth),
        )
    ]
    if risk.level == standing.level:
        return Reaction(events, open_alert)
    alert_level = standing.open_alert_level or standing.level
    rose = RANK[risk.level] > RANK[standing.level]
    if open_alert is not None and (
        RANK[risk.level] < RANK[alert_level] or (rose and risk.level in rules.alert_levels)
    ):
        # Left the alert's level (down), or a higher alert takes its place (up).
        closed = AlertClosed(
            alert_id=open_alert, customer_id=risk.customer_id, closure="left_risk_level"
        )
        events.append(closed)
        open_alert = None
    if rose_to_high(standing.level, risk.level):
        events.append(
            ChurnRiskRaised(
                customer_id=risk.customer_id,
                score=risk.score,
                reasons=reasons,
                owner_id=standing.owner_id,
                as_of=now,
            )
        )
    if rose and risk.level in rules.alert_levels:
        open_alert = alert_id_for(tenant_id, risk.customer_id, standing.version)
        events.append(
            AlertOpened(
                alert_id=open_alert,
                customer_id=risk.customer_id,
                level=risk.level,
                score=risk.score,
                reasons=reasons,
                owner_id=standing.owner_id,
            )
        )
        if risk.level in rules.follow_up_levels:
            signals = ", ".join(r.signal.replace("_", " ") for r in reasons[:3])
            events.append(
                FollowUpTaskRequested(
                    alert_id=open_alert,
                    customer_id=risk.customer_id,
                    owner_id=standing.owner_id,
                    title=f"Churn risk {risk.score}/100: {signals}"[:200],
                    due_at=now + FOLLOW_UP_WITHIN,
                    task_id=task_id_for(open_alert),
                )
            )
    return Reaction(events, open_alert)
