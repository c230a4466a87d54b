"""The event store's PostgreSQL statements: an append in one round trip.

On PostgreSQL an append needs no BEGIN/COMMIT of its own: the events, their outbox
rows and the gap check are one statement, and a new stream with its subject's
personal data key one server-side routine that a service's own routines call.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from libs.events.records import NewEvent

APPEND_IN_ONE_STATEMENT = """
WITH appended AS (
    INSERT INTO events (event_id, tenant_id, stream_id, version, type, partition_key, data,
                        correlation_id, causation_id, occurred_at, recorded_at,
                        traceparent, tracestate)
    SELECT u.event_id, $2::varchar, $3::varchar, $4::int + u.ord::int, u.type,
           u.partition_key, u.data::jsonb, u.correlation_id, u.causation_id, u.occurred_at,
           $5::timestamptz, u.traceparent, u.tracestate
    FROM unnest($1::varchar[], $6::varchar[], $7::varchar[], $8::text[], $9::varchar[],
                $10::varchar[], $11::timestamptz[], $12::varchar[], $13::varchar[])
         WITH ORDINALITY AS u(event_id, type, partition_key, data, correlation_id,
                              causation_id, occurred_at, traceparent, tracestate, ord)
    WHERE $4::int = 0 OR (SELECT max(version) FROM events
                          WHERE tenant_id = $2::varchar AND stream_id = $3::varchar) = $4::int
    ORDER BY u.ord
    RETURNING position
)
INSERT INTO outbox (position, enqueued_at) SELECT position, $5::timestamptz FROM appended
"""


# PostgreSQL: a new stream's events, their outbox rows and the personal data key of
# their subject, as one server-side routine. A service's own routine calls it, so a
# command that also checks and writes the service's tables is one round trip.
# A stream or key that exists already is a unique violation: nothing is written.
# The routine as it was before events kept their trace context: a call in named notation
# would match both it and the routine below, so it goes first.
START_STREAM_BEFORE_TRACES = """
DROP FUNCTION IF EXISTS events_start_stream(varchar, varchar, varchar, bytea, timestamptz,
    varchar[], varchar[], varchar[], text[], varchar[], varchar[], timestamptz[])
"""
START_STREAM_ROUTINE = """
CREATE OR REPLACE FUNCTION events_start_stream(
    p_tenant varchar, p_stream varchar, p_subject varchar, p_key bytea, p_now timestamptz,
    p_event_ids varchar[], p_types varchar[], p_partition_keys varchar[], p_data text[],
    p_correlation_ids varchar[], p_causation_ids varchar[], p_occurred_at timestamptz[],
    p_traceparents varchar[], p_tracestates varchar[]
) RETURNS integer LANGUAGE plpgsql AS $$
BEGIN
    IF p_key IS NOT NULL THEN
        INSERT INTO personal_data_keys (tenant_id, subject_id, key, created_at)
        VALUES (p_tenant, p_subject, p_key, p_now);
    END IF;
    WITH appended AS (
        INSERT INTO events (event_id, tenant_id, stream_id, version, type, partition_key,
                            data, correlation_id, causation_id, occurred_at, recorded_at,
                            traceparent, tracestate)
        SELECT u.event_id, p_tenant, p_stream, u.ord::int, u.type, u.partition_key,
               u.data::jsonb, u.correlation_id, u.causation_id, u.occurred_at, p_now,
               u.traceparent, u.tracestate
        FROM unnest(p_event_ids, p_types, p_partition_keys, p_data, p_correlation_ids,
                    p_causation_ids, p_occurred_at, p_traceparents, p_tracestates)
             WITH ORDINALITY AS u(event_id, type, partition_key, data, correlation_id,
                                  causation_id, occurred_at, traceparent, tracestate, ord)
        ORDER BY u.ord
        RETURNING position
    )
    INSERT INTO outbox (position, enqueued_at) SELECT position, p_now FROM appended;
    RETURN cardinality(p_event_ids);
END $$
"""
# Its parameters by name: callers pass a mapping and call it in named notation
# (``p_tenant => $1``), so no caller depends on the order of the signature.
START_STREAM_PARAMETERS = (
    "p_tenant", "p_stream", "p_subject", "p_key", "p_now", "p_event_ids", "p_types",
    "p_partition_keys", "p_data", "p_correlation_ids", "p_causation_ids", "p_occurred_at",
    "p_traceparents", "p_tracestates",
)


def event_columns(
    new_events: Sequence[NewEvent], data: Sequence[dict[str, Any]]
) -> list[list[Any]]:
    """The per-event arrays both PostgreSQL routines unnest, in their order: type,
    partition key, data (JSON text, as stored), correlation, causation, occurred at,
    trace context."""
    return [
        [e.type for e in new_events],
        [e.partition_key for e in new_events],
        [json.dumps(d, separators=(",", ":"), ensure_ascii=False) for d in data],
        [e.correlation_id for e in new_events],
        [e.causation_id for e in new_events],
        [e.occurred_at for e in new_events],
        [e.traceparent for e in new_events],
        [e.tracestate for e in new_events],
    ]
