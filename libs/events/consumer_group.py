"""A consumer in its group: starting (unless stopped first), and partitions assigned
and revoked, each assigned one resumed where its checkpoint says."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener

from libs.events import metrics

if TYPE_CHECKING:
    from libs.events.consumer import EventConsumer


class PartitionAssignment(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: EventConsumer, consumer: AIOKafkaConsumer) -> None:
        self.owner = owner
        self.consumer = consumer

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self.owner._resumed.difference_update(revoked)
        self.owner._stalled.difference_update(revoked)
        for tp in revoked:
            # Another member answers for it now.
            self.owner._waiting_since.pop(tp, None)
            metrics.CONSUMER_STALLED.labels(self.owner.group_id, tp.topic, str(tp.partition)).set(0)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        owner = self.owner
        owner.joined = True
        for state in (owner.positions, owner._verifying, owner._below_position_since):
            for tp in [tp for tp in state if tp not in assigned]:
                del state[tp]
        if owner.checkpoints is None or not assigned:
            owner._resumed = set(assigned)
            return
        owner._resumed.difference_update(assigned)
        saved = await owner.checkpoints(set(assigned))
        for tp in assigned:
            checkpoint = saved.get(tp)
            if checkpoint is None or checkpoint.next_offset == 0:
                # Never applied: from the start (what was fetched meanwhile was dropped).
                self.consumer.seek(tp, 0)
                continue
            owner.positions[tp] = checkpoint.next_offset
            # Start where the database says, one message early, to see that it is the
            # message applied last: the topic may have been lost and refilled since.
            self.consumer.seek(tp, checkpoint.next_offset - 1)
            owner._verifying[tp] = checkpoint
        owner._resumed = set(assigned)


async def started_unless_stopped(consumer: AIOKafkaConsumer, stop: asyncio.Event) -> bool:
    """Start ``consumer`` (it returns once the group assigned it partitions), unless
    ``stop`` is set first: a group join can take the broker's whole join delay, and a
    service shutting down must not wait for an assignment it will give back at once."""
    starting = asyncio.ensure_future(consumer.start())
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        if not starting.done():
            starting.cancel()
            await asyncio.gather(starting, return_exceptions=True)
    if starting.cancelled():
        await consumer.stop()
        return False
    failure = starting.exception()
    if failure is not None:
        await consumer.stop()
        raise failure
    return True
