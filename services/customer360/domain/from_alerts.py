"""What the alerts service's events do to the 360 view (``crm.alerts.events``).

The churn-risk section: the customer's level, score and reasons (each signal, its
contribution, a sentence and the events behind it) as of the last level change; the
alerts section: each churn alert with its status (open, acknowledged, resolved,
dismissed, left_risk_level), newest first; a timeline line for each change of level
and each step of an alert. The alerts service files events about a merged duplicate
under its survivor, so the survivor's view carries them (decision 0046).

Alerts events are ids, figures and sentences built from them; a dismissal's reason is
free text a user wrote, kept as ``note``: left out of the redacted line, blanked by an
erasure.
"""

from __future__ import annotations

from typing import Any

from libs.events.catalog.alerts import (
    AlertAcknowledged,
    AlertClosed,
    AlertOpened,
    ChurnRiskChanged,
    catalog,
)
from libs.events.kafka import service_topic
from services.customer360.domain.sections import patch, put, utc_iso, with_sections
from services.customer360.domain.view import CustomerView, Fact, Outcome, Source

ALERTS = Source("alerts", service_topic("alerts"), catalog)

# Alerts listed: the most recent by when they opened (each is also on the timeline).
RECENT_ALERTS = 20
_RANK = {"none": 0, "low": 1, "medium": 2, "high": 3}


def _signals(reasons: list[Any]) -> str:
    return ", ".join(r.signal.replace("_", " ") for r in reasons[:3])


@ALERTS.on(ChurnRiskChanged)
def churn_risk_changed(view: CustomerView, event: ChurnRiskChanged, fact: Fact) -> Outcome:
    # The risk as the alerts service keeps it (decision 0101): every move of the score
    # is told, so this section holds what its ranking holds.
    risk = {
        "level": event.to_level,
        "score": event.score,
        "reasons": [r.model_dump(mode="json") for r in event.reasons],
        "no_purchase_probability": event.no_purchase_probability,
        "predicted_value": event.predicted_value,
        "revenue_at_risk": event.revenue_at_risk,
        "as_of": utc_iso(event.as_of),
    }
    updated = with_sections(view, churn_risk=risk)
    if event.to_level == event.from_level:
        return Outcome(updated)  # the score moved within its level: no timeline line
    way = "rose" if _RANK[event.to_level] > _RANK[event.from_level] else "fell"
    line = f"Churn risk {way} from {event.from_level} to {event.to_level} ({event.score}/100)"
    if event.reasons:
        line += f": {_signals(event.reasons)}"
    return Outcome(updated, fact.entry(line, happened_at=event.as_of))


@ALERTS.on(AlertOpened)
def alert_opened(view: CustomerView, event: AlertOpened, fact: Fact) -> Outcome:
    alert = {
        "alert_id": event.alert_id,
        "level": event.level,
        "score": event.score,
        "status": "open",
        "signals": [r.signal for r in event.reasons],
        "opened_at": utc_iso(fact.time),
        "closed_at": None,
        "note": "",
    }
    alerts = put(view.sections["alerts"], "alert_id", alert, order_by="opened_at")
    line = f"Churn alert opened at {event.level} risk ({event.score}/100)"
    if event.reasons:
        line += f": {_signals(event.reasons)}"
    return Outcome(with_sections(view, alerts=alerts[:RECENT_ALERTS]), fact.entry(line))


@ALERTS.on(AlertAcknowledged)
def alert_acknowledged(view: CustomerView, event: AlertAcknowledged, fact: Fact) -> Outcome:
    alerts = patch(view.sections["alerts"], "alert_id", event.alert_id, status="acknowledged")
    line = f"Churn alert acknowledged by {event.by}"
    return Outcome(with_sections(view, alerts=alerts), fact.entry(line))


@ALERTS.on(AlertClosed)
def alert_closed(view: CustomerView, event: AlertClosed, fact: Fact) -> Outcome:
    note = "" if view.erased else event.reason
    alerts = patch(
        view.sections["alerts"],
        "alert_id",
        event.alert_id,
        status=event.closure,
        closed_at=utc_iso(fact.time),
        note=note,
    )
    match event.closure:
        case "resolved":
            line = f"Churn alert resolved by {event.by}"
        case "dismissed":
            line = f"Churn alert dismissed by {event.by}"
        case _:
            line = "Churn alert closed: the risk level fell"
    full = f"{line}: {event.reason}" if event.reason else line
    return Outcome(with_sections(view, alerts=alerts), fact.entry(full, line))
