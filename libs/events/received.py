"""What a consumer hands its group's batch handler, and what it reads back on assignment."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from aiokafka import TopicPartition

from libs.events.catalog import DomainEvent
from libs.events.envelope import EventEnvelope


@dataclass(frozen=True, slots=True)
class ReceivedEvent:
    envelope: EventEnvelope
    event: DomainEvent
    topic: str
    partition: int
    offset: int
    # The relay's send that delivered it (W3C traceparent), when traced (decision 0103).
    delivered_by: str | None = None


@dataclass(frozen=True, slots=True)
class PartitionProgress:
    """Where a partition stands once a batch is applied: the next offset to read,
    and the id of the message just before it (the topic's identity at that point)."""

    next_offset: int
    last_event_time: datetime | None
    last_event_id: str | None = None


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """Where a consumer saved it stands in a partition, read back on assignment."""

    next_offset: int
    last_event_id: str | None


Progress = dict[TopicPartition, PartitionProgress]
BatchHandler = Callable[[Sequence[ReceivedEvent], Progress], Awaitable[None]]
CheckpointLoader = Callable[[set[TopicPartition]], Awaitable[dict[TopicPartition, Checkpoint]]]
