"""The alerts service's own Prometheus metrics (the event and relay ones are shared)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from prometheus_client import Counter, Gauge, Histogram

from libs.events.catalog import DomainEvent
from libs.events.catalog.alerts import AlertOpened, ChurnRiskChanged

CUSTOMERS_AT_RISK = Gauge(
    "crm_churn_customers", "Customers (every tenant) by the churn level last assessed", ["level"]
)
ALERTS_OPENED = Counter("crm_churn_alerts_opened_total", "Churn alerts opened", ["level"])
RISK_CHANGES = Counter(
    "crm_churn_risk_changes_total", "Churn level changes", ["from_level", "to_level"]
)
# The kept ranking (decision 0093): what the sweep assessed again, and the rankings as
# of a past time scored as jobs.
SWEPT = Counter(
    "crm_churn_sweep_assessed_total", "Customers the sweep assessed again (their review was due)"
)
PAST_RANKINGS = Counter(
    "crm_churn_past_rankings_total", "Rankings as of a past time scored, by outcome", ["outcome"]
)
PAST_RANKING_SECONDS = Histogram(
    "crm_churn_past_ranking_seconds",
    "Time to score and keep a ranking as of a past time",
    buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
LEVELS = ("high", "medium", "low", "none")


def decided(events: Sequence[DomainEvent]) -> None:
    for event in events:
        if isinstance(event, AlertOpened):
            ALERTS_OPENED.labels(event.level).inc()
        elif isinstance(event, ChurnRiskChanged) and event.from_level != event.to_level:
            RISK_CHANGES.labels(event.from_level, event.to_level).inc()


def set_levels(counts: Mapping[str, int]) -> None:
    for level in LEVELS:
        CUSTOMERS_AT_RISK.labels(level).set(counts.get(level, 0))
