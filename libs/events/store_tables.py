"""The event store's tables as the code queries them (``schema.py`` creates them).

``events`` holds every stream; ``outbox`` the positions not yet published (written in
the same transaction as the events); ``personal_data_keys`` one key per subject.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
)

from libs.events.records import RecordedEvent
from libs.events.vault import keys_table
from libs.platform.db import BigId, JsonDocument, UtcDateTime

metadata = MetaData()

events = Table(
    "events",
    metadata,
    Column("position", BigId, primary_key=True, autoincrement=True),
    Column("event_id", String(36), nullable=False, unique=True),
    Column("tenant_id", String(64), nullable=False),
    Column("stream_id", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("type", String(200), nullable=False),
    Column("partition_key", String(64), nullable=False),
    Column("data", JsonDocument, nullable=False),
    Column("correlation_id", String(64)),
    Column("causation_id", String(64)),
    Column("occurred_at", UtcDateTime, nullable=False),
    Column("recorded_at", UtcDateTime, nullable=False),
    # The appending request's trace context (W3C), carried to Kafka (decision 0103).
    Column("traceparent", String(55)),
    Column("tracestate", String(512)),
    UniqueConstraint("tenant_id", "stream_id", "version", name="uq_events_stream_version"),
)

outbox = Table(
    "outbox",
    metadata,
    Column("position", BigId, ForeignKey("events.position"), primary_key=True),
    Column("enqueued_at", UtcDateTime, nullable=False),
)

Index("ix_events_partition_key", events.c.tenant_id, events.c.partition_key)

personal_data_keys = keys_table(metadata)


EVENT_COLUMNS = [
    events.c.position,
    events.c.event_id,
    events.c.tenant_id,
    events.c.stream_id,
    events.c.version,
    events.c.type,
    events.c.partition_key,
    events.c.data,
    events.c.occurred_at,
    events.c.recorded_at,
    events.c.correlation_id,
    events.c.causation_id,
    events.c.traceparent,
    events.c.tracestate,
]


def recorded_event(row: Any) -> RecordedEvent:
    return RecordedEvent(*row)
