"""What goes into the event store and what comes out of it.

A writer hands the store ``NewEvent``s (one ``StreamAppend`` per stream, with the
version it read); readers get ``RecordedEvent``s back, with their position and
version. ``ConcurrencyConflict``: the stream moved on since the writer read it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from libs.events.catalog import DomainEvent
from libs.events.envelope import EventEnvelope
from libs.events.tracing import current_traceparent, current_tracestate


class ConcurrencyConflict(Exception):
    """Someone else appended to the stream since the writer read it."""

    def __init__(self, tenant_id: str, stream_id: str, expected_version: int) -> None:
        super().__init__(
            f"stream {stream_id} of tenant {tenant_id} is no longer at version {expected_version}"
        )
        self.tenant_id = tenant_id
        self.stream_id = stream_id
        self.expected_version = expected_version


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event about to be appended."""

    type: str
    data: dict[str, Any]
    partition_key: str
    occurred_at: datetime
    event_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    correlation_id: str | None = None
    causation_id: str | None = None
    # The trace of the request that makes the event (None when tracing is off): stored
    # with it, so its publication and every consumer's apply join that trace.
    traceparent: str | None = field(default_factory=current_traceparent)
    tracestate: str | None = field(default_factory=current_tracestate)

    @classmethod
    def from_domain(
        cls,
        event: DomainEvent,
        *,
        partition_key: str,
        occurred_at: datetime,
        correlation_id: str | None = None,
        causation_id: str | None = None,
    ) -> NewEvent:
        return cls(
            type=type(event).type_name,
            data=event.model_dump(mode="json"),
            partition_key=partition_key,
            occurred_at=occurred_at,
            correlation_id=correlation_id,
            causation_id=causation_id,
        )


@dataclass(frozen=True, slots=True)
class StreamAppend:
    """New events for one stream, after the version the writer read (0: a new stream)."""

    stream_id: str
    expected_version: int
    events: Sequence[NewEvent]


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    position: int
    event_id: str
    tenant_id: str
    stream_id: str
    version: int
    type: str
    partition_key: str
    data: dict[str, Any]
    occurred_at: datetime
    recorded_at: datetime
    correlation_id: str | None = None
    causation_id: str | None = None
    traceparent: str | None = None
    tracestate: str | None = None

    def to_envelope(self, source: str, dataschema: str | None = None) -> EventEnvelope:
        return EventEnvelope(
            id=self.event_id,
            source=source,
            type=self.type,
            subject=self.stream_id,
            time=self.occurred_at,
            tenantid=self.tenant_id,
            partitionkey=self.partition_key,
            sequence=self.version,
            data=self.data,
            correlationid=self.correlation_id,
            causationid=self.causation_id,
            dataschema=dataschema,
            traceparent=self.traceparent,
            tracestate=self.tracestate,
        )
