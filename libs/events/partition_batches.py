"""Sending the relay's records: one record batch per partition, and what came back.

What the broker acknowledged, per partition (the first offset and the end after it),
is what the relay records as published (``published.py``) before it deletes the
outbox rows: the check that a broker still holds what it was given.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner

from libs.events.envelope import KafkaRecord
from libs.events.published import PartitionEnd

# The Java client's murmur2 partitioning: a key lands where any Kafka client puts it.
_PARTITIONER = DefaultPartitioner()


class TopicMissing(KafkaError):  # type: ignore[misc]
    """The topic is gone (a broker that lost its data); the relay creates it again."""


async def send_in_partition_batches(
    producer: AIOKafkaProducer, topic: str, batch: list[KafkaRecord]
) -> dict[int, PartitionEnd]:
    """Send ``batch`` to ``topic``; per partition, the first offset acknowledged and the
    end after."""
    # Fresh metadata on every pass: a broker that came back empty must not be
    # written to as if the topic still existed (cached metadata would say so).
    await producer.client.force_metadata_update()
    if not producer.client.cluster.partitions_for_topic(topic):
        raise TopicMissing(topic)
    partitions = sorted(await producer.partitions_for(topic))
    # One record batch per partition, chosen as the default partitioner would for
    # the key: no per-message future or metadata lookup. Batches of a partition
    # go out in the order they are sent, so every stream keeps its order.
    builders: dict[int, Any] = {}
    sends = []
    counts: list[int] = []  # records per batch sent, in the order of ``sends``
    for record in batch:
        partition = _PARTITIONER(record.key, partitions, partitions)
        builder = builders.get(partition)
        if builder is None:
            builder = builders[partition] = producer.create_batch()
        if (
            builder.append(
                timestamp=None, key=record.key, value=record.value, headers=record.headers
            )
            is None
        ):
            counts.append(builder.record_count())
            sends.append(await producer.send_batch(builder, topic, partition=partition))
            builder = builders[partition] = producer.create_batch()
            builder.append(
                timestamp=None, key=record.key, value=record.value, headers=record.headers
            )
    for partition, builder in builders.items():
        counts.append(builder.record_count())
        sends.append(await producer.send_batch(builder, topic, partition=partition))
    # Every batch must be acknowledged before the outbox rows go; if any fails
    # the whole batch is sent again (consumers drop the duplicates).
    results = await asyncio.gather(*sends, return_exceptions=True)
    acked: dict[int, PartitionEnd] = {}
    for result, count in zip(results, counts, strict=True):
        if isinstance(result, BaseException):
            raise result
        first, end = result.offset, result.offset + count
        known = acked.get(result.partition)
        if known is not None:
            first, end = min(first, known.last_batch_offset), max(end, known.end_offset)
        acked[result.partition] = PartitionEnd(first, end)
    return acked
