"""Kafka plumbing shared by the relay and the consumers: topic names, clients, topics."""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaError,
    NodeNotReadyError,
    RequestTimedOutError,
    TopicAlreadyExistsError,
)
from pydantic import BaseModel

log = logging.getLogger(__name__)


def service_topic(service: str) -> str:
    """Each service publishes on exactly one topic."""
    return f"crm.{service}.events"


def dlq_topic(topic: str) -> str:
    return f"{topic}.dlq"


class KafkaSettings(BaseModel):
    bootstrap_servers: str = "127.0.0.1:9092"
    # Real Kafka: keep on, so retried batches cannot reorder a partition. Tansu
    # does not implement InitProducerId, so the embedded default turns it off.
    enable_idempotence: bool = False
    partitions: int = 6
    replication_factor: int = 1
    request_timeout_ms: int = 10_000
    # How long a dead consumer keeps its partitions before the group moves them.
    session_timeout_ms: int = 10_000
    heartbeat_interval_ms: int = 3_000
    # How long a fetch may wait for data. aiokafka's 500 ms default is felt as
    # end-to-end lag on a quiet topic; 20 ms keeps read-your-writes fast.
    fetch_max_wait_ms: int = 20
    # A consumer that found nothing for ``idle_after_seconds`` fetches with this wait
    # instead, until records come again: an idle platform then asks the broker a few
    # times a second rather than fifty (issue 25, decision 0107). Apache Kafka answers
    # a waiting fetch as soon as data arrives, so this costs it no latency; a broker
    # that holds every fetch its full wait (the bundled Tansu) delivers the first event
    # after a quiet spell up to this much later.
    idle_fetch_max_wait_ms: int = 500
    idle_after_seconds: float = 1.0


def new_producer(settings: KafkaSettings, *, client_id: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers,
        client_id=client_id,
        acks="all",
        enable_idempotence=settings.enable_idempotence,
        linger_ms=2,
        max_batch_size=256 * 1024,
        request_timeout_ms=settings.request_timeout_ms,
        retry_backoff_ms=100,
    )


ENSURE_ATTEMPTS = 7  # 0.25 + 0.5 + ... + 8 s: about 24 s of waiting in all


async def ensure_topics(settings: KafkaSettings, topics: list[str]) -> None:
    """Create topics that do not exist yet (idempotent, safe to race). A broker that
    does not answer at once (starting, or a loaded machine) is asked again, with
    backoff, for about half a minute."""
    for attempt in range(ENSURE_ATTEMPTS):
        try:
            await _ensure_topics(settings, topics)
            return
        except (KafkaConnectionError, NodeNotReadyError, RequestTimedOutError):
            if attempt == ENSURE_ATTEMPTS - 1:
                raise
            await asyncio.sleep(min(0.25 * 2**attempt, 8.0))


async def _ensure_topics(settings: KafkaSettings, topics: list[str]) -> None:
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.bootstrap_servers,
        request_timeout_ms=settings.request_timeout_ms,
    )
    try:
        await admin.start()
        existing = set(await admin.list_topics())
        missing = [t for t in topics if t not in existing]
        if not missing:
            return
        try:
            await admin.create_topics(
                [
                    NewTopic(
                        t,
                        num_partitions=settings.partitions,
                        replication_factor=settings.replication_factor,
                    )
                    for t in missing
                ]
            )
        except TopicAlreadyExistsError:
            pass
    finally:
        await admin.close()


async def wait_for_broker(settings: KafkaSettings, *, timeout: float = 30.0) -> None:
    """Block until the broker answers metadata requests."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
        try:
            await admin.start()
            await admin.list_topics()
            return
        except (KafkaError, OSError) as exc:
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"broker {settings.bootstrap_servers} unreachable") from exc
            await asyncio.sleep(0.2)
        finally:
            await admin.close()
