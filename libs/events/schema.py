"""The event store's and the projection runtime's tables, as migrations create them.

Every service that stores events, or runs projections, creates these tables in its
own first migration by calling the functions here, so the DDL is written once for
all services. Each function describes the tables as of one revision and never
changes: a later change to them is a new function (``..._v2``) that each service's
next migration calls. The ``Table`` objects in ``store_tables.py`` and ``checkpoints.py``
are what the code queries; a test compares them with what the migrations built.

The PostgreSQL routines are code, not data: ``ROUTINES`` are installed again at the
end of every migration run (``CREATE OR REPLACE``), so they follow the code.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from libs.events.store_routines import START_STREAM_BEFORE_TRACES, START_STREAM_ROUTINE
from libs.platform.db import BigId, JsonDocument, UtcDateTime

# Installed on PostgreSQL after every upgrade, in this order (later ones may call earlier).
ROUTINES: tuple[str, ...] = (START_STREAM_BEFORE_TRACES, START_STREAM_ROUTINE)


def create_event_store_v1(op: Any) -> None:
    """``events``, ``outbox`` and ``personal_data_keys`` as of the first revision."""
    op.create_table(
        "events",
        sa.Column("position", BigId, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(36), nullable=False, unique=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("stream_id", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("type", sa.String(200), nullable=False),
        sa.Column("partition_key", sa.String(64), nullable=False),
        sa.Column("data", JsonDocument, nullable=False),
        sa.Column("correlation_id", sa.String(64)),
        sa.Column("causation_id", sa.String(64)),
        sa.Column("occurred_at", UtcDateTime, nullable=False),
        sa.Column("recorded_at", UtcDateTime, nullable=False),
        sa.UniqueConstraint(
            "tenant_id", "stream_id", "version", name="uq_events_stream_version"
        ),
    )
    op.create_index("ix_events_partition_key", "events", ["tenant_id", "partition_key"])
    op.create_table(
        "outbox",
        sa.Column("position", BigId, sa.ForeignKey("events.position"), primary_key=True),
        sa.Column("enqueued_at", UtcDateTime, nullable=False),
    )
    op.create_table(
        "personal_data_keys",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("subject_id", sa.String(64), primary_key=True),
        sa.Column("key", sa.LargeBinary),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("erased_at", UtcDateTime),
    )


def create_projection_runtime_v1(op: Any) -> None:
    """The runtime's checkpoints, applied event ids and active generations.

    A projection's own tables are not here: each generation's tables are made by the
    runtime when that generation starts (a new shape is a new generation, rebuilt
    from the topics), so they never need a migration.
    """
    op.create_table(
        "projection_checkpoints",
        sa.Column("projection", sa.String(120), primary_key=True),
        sa.Column("topic", sa.String(200), primary_key=True),
        sa.Column("partition", sa.Integer, primary_key=True),
        sa.Column("next_offset", BigId, nullable=False),
        sa.Column("last_event_time", UtcDateTime),
        sa.Column("updated_at", UtcDateTime, nullable=False),
    )
    op.create_table(
        "projection_applied_events",
        sa.Column("projection", sa.String(120), primary_key=True),
        sa.Column("event_id", sa.String(64), primary_key=True),
    )
    op.create_table(
        "projection_generations",
        sa.Column("projection", sa.String(80), primary_key=True),
        sa.Column("active", sa.Integer, nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
    )


def create_publication_record_v2(op: Any) -> None:
    """What the relay knows it published, per partition, and a republication in
    progress: how it tells a broker that lost its topics (docs/decisions/0010)."""
    op.create_table(
        "outbox_published_ends",
        sa.Column("topic", sa.String(200), primary_key=True),
        sa.Column("partition", sa.Integer, primary_key=True),
        sa.Column("last_batch_offset", BigId, nullable=False),
        sa.Column("end_offset", BigId, nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
    )
    op.create_table(
        "outbox_republishing",
        sa.Column("topic", sa.String(200), primary_key=True),
        sa.Column("after_position", BigId, nullable=False),
        sa.Column("reason", sa.String(400), nullable=False),
        sa.Column("started_at", UtcDateTime, nullable=False),
    )


def add_checkpoint_event_id_v2(op: Any) -> None:
    """The id of the message before each checkpoint, so a consumer can tell a topic it
    read from one that was lost and refilled (docs/decisions/0010)."""
    op.add_column("projection_checkpoints", sa.Column("last_event_id", sa.String(64)))


def add_trace_context_v3(op: Any) -> None:
    """The W3C trace context of the request that appended each event, which the relay
    carries to Kafka as CloudEvents' ``traceparent`` and ``tracestate`` (decision 0103)."""
    op.add_column("events", sa.Column("traceparent", sa.String(55)))
    op.add_column("events", sa.Column("tracestate", sa.String(512)))
