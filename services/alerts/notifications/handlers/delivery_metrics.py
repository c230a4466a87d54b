"""Prometheus counters of notification deliveries (every tenant)."""

from __future__ import annotations

from prometheus_client import Counter

DELIVERIES = Counter(
    "crm_webhook_deliveries_total",
    "Delivery attempts of platform events to subscribers, by channel and outcome",
    ["channel", "outcome"],  # outcome: delivered, failed
)
FAILURES = Counter(
    "crm_webhook_delivery_failures_total",
    "Failed delivery attempts, by channel and why (status, timeout, connection, refused, smtp)",
    ["channel", "reason"],
)
GIVEN_UP = Counter(
    "crm_webhook_deliveries_given_up_total",
    "Deliveries given up after their last attempt failed",
    ["channel"],
)
DISABLED = Counter(
    "crm_webhook_subscriptions_disabled_total",
    "Subscriptions disabled after failed attempts in a row",
)


def start_at_zero() -> None:
    """Every series exists from start-up, so ``increase()`` sees the first failure
    (docs/decisions/0037)."""
    for channel in ("webhook", "email"):
        for outcome in ("delivered", "failed"):
            DELIVERIES.labels(channel, outcome)
        GIVEN_UP.labels(channel)
    for reason in ("status", "timeout", "connection", "refused"):
        FAILURES.labels("webhook", reason)
    FAILURES.labels("email", "smtp")
