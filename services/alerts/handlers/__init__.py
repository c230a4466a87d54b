"""Scoring from the stored facts, assessing customers, the sweep, and setting the rules.

The churn projector (``projection.ChurnFacts``) keeps per-customer facts; after each
batch it assesses the customers the batch touched as of the clock's now here, as the
sweep does: a level that moved appends ``ChurnRiskChanged`` to the customer's alerts
stream, and a rise into high also ``ChurnRiskRaised`` (once per rise: the level is kept
beside it), in the same transaction, so the outbox relay publishes exactly what was
decided.

By concern: the handlers' ``context``, ``assessment`` (and the sweep), the tenant's
``rules``, the ``weekly_lists``, ``merges`` and ``alert_responses``; scoring and
backtests in ``ranking``, rankings as of a past time in ``past_rankings``. Callers use
this package's names.
"""

from services.alerts.handlers import churn_metrics, ranking
from services.alerts.handlers.alert_responses import respond_to_alert
from services.alerts.handlers.assessment import assess_customers, sweep
from services.alerts.handlers.context import SERVICE, Alerts
from services.alerts.handlers.merges import retire_duplicate
from services.alerts.handlers.rules import RULES_STREAM, set_rules
from services.alerts.handlers.weekly_lists import (
    WEEKLY_STREAM,
    publish_weekly_lists,
    weekly_lists_of,
)

__all__ = [
    "RULES_STREAM",
    "SERVICE",
    "WEEKLY_STREAM",
    "Alerts",
    "assess_customers",
    "churn_metrics",
    "publish_weekly_lists",
    "ranking",
    "respond_to_alert",
    "retire_duplicate",
    "set_rules",
    "sweep",
    "weekly_lists_of",
]
