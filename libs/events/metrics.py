"""Prometheus metrics every service process exposes at ``/metrics``.

Names are part of the ops contract (dashboards and alerts use them), so they
live here, once, and every relay, consumer and projection updates the same ones.

A service run in several worker processes (``crm serve --workers N``) sets
``PROMETHEUS_MULTIPROC_DIR``: each worker writes its values to files there and
``/metrics``, whichever worker answers it, adds up every worker's counters and
histograms. A gauge says how to combine: the relay's and the projections' are set
by the single active one, so the value most recently set is the one that counts.
"""

from __future__ import annotations

import os
from typing import Final

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    make_asgi_app,
    multiprocess,
)

# Set by whichever worker is the single active relay or projector.
SET_BY_ONE: Final = "mostrecent"

EVENTS_APPENDED = Counter(
    "crm_events_appended_total", "Events appended to a service's event store", ["service"]
)
OUTBOX_BACKLOG = Gauge(
    "crm_outbox_backlog_events", "Events stored but not yet published", ["service"],
    multiprocess_mode=SET_BY_ONE,
)
OUTBOX_OLDEST_AGE = Gauge(
    "crm_outbox_oldest_age_seconds", "Age of the oldest unpublished event", ["service"],
    multiprocess_mode=SET_BY_ONE,
)
EVENTS_PUBLISHED = Counter(
    "crm_events_published_total", "Events the relay published to Kafka", ["topic"]
)
RELAY_FAILURES = Counter(
    "crm_relay_failures_total", "Publish attempts that failed and will be retried", ["service"]
)
CONSUMER_LAG = Gauge(
    "crm_consumer_lag_events",
    "Messages between a consumer group's position and the partition end",
    ["group", "topic", "partition"],
    multiprocess_mode=SET_BY_ONE,
)
CONSUMER_STALLED = Gauge(
    "crm_consumer_stalled",
    "1 while a partition's position is beyond its end, or behind it without progress",
    ["group", "topic", "partition"],
)
PROJECTION_STALLED = Gauge(
    "crm_projection_stalled",
    "1 while a projection's checkpoint is beyond a partition's end, or behind it unmoving",
    ["projection"],
)
CONSUMER_RESETS = Counter(
    "crm_consumer_resets_total",
    "Partitions read again from their start because the topic lost or replaced messages",
    ["group", "topic", "reason"],
)
TOPIC_LOSSES = Counter(
    "crm_relay_topic_losses_total",
    "Times the relay found the broker no longer holds what it published",
    ["topic", "reason"],
)
EVENTS_REPUBLISHED = Counter(
    "crm_events_republished_total", "Events published again from the event store", ["topic"]
)
PROJECTION_LAG_SECONDS = Gauge(
    "crm_projection_lag_seconds",
    "Seconds between the newest applied event's time and now",
    ["projection"],
    multiprocess_mode=SET_BY_ONE,
)
EVENTS_APPLIED = Counter("crm_events_applied_total", "Events a projection applied", ["projection"])
DUPLICATES_SKIPPED = Counter(
    "crm_events_duplicates_total", "Redelivered events a projection skipped", ["projection"]
)
HANDLER_FAILURES = Counter(
    "crm_handler_failures_total", "Handler attempts that raised", ["group", "topic"]
)
DEAD_LETTERED = Counter(
    "crm_dead_lettered_total", "Messages sent to a dead-letter topic", ["group", "topic"]
)
UNKNOWN_EVENTS = Counter(
    "crm_events_unknown_total", "Messages of types this consumer does not know", ["group", "type"]
)
BATCH_SECONDS = Histogram(
    "crm_projection_batch_seconds", "Time to apply and record one batch", ["projection"]
)


def _registry() -> CollectorRegistry:
    """Every worker's values when the service runs several, else this process's."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return registry


_exposed = _registry()


def render() -> tuple[bytes, str]:
    return generate_latest(_exposed), CONTENT_TYPE_LATEST


metrics_app = make_asgi_app(_exposed)
