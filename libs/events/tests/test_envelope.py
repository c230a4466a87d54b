"""The CloudEvents envelope: what subscribers see on Kafka."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from cloudevents.core.bindings import kafka as ce_kafka
from cloudevents.v1.kafka import KafkaMessage as V1KafkaMessage
from cloudevents.v1.kafka import from_binary as v1_from_binary

from libs.events.envelope import EventEnvelope, InvalidEnvelope
from libs.events.kafka import KafkaSettings, ensure_topics
from testing.consumers import send_retrying

ENVELOPE = EventEnvelope(
    id="6f1c2b1e-0000-4000-8000-000000000001",
    source="/crm/contacts",
    type="crm.contacts.customer_registered.v1",
    subject="cust-42",
    time=datetime(2026, 3, 1, 8, 0, tzinfo=UTC),
    tenantid="acme",
    partitionkey="cust-42",
    sequence=3,
    data={"name": "张伟", "email": "zw@example.com"},
    correlationid="req-1",
    causationid="cmd-1",
    dataschema="https://schemas.example/crm/crm.contacts.customer_registered.v1.json",
)


def test_binary_mode_puts_attributes_in_ce_headers_and_data_in_the_value() -> None:
    record = ENVELOPE.to_kafka()
    headers = dict(record.headers)

    assert record.key == b"cust-42"
    assert headers["ce_specversion"] == b"1.0"
    assert headers["ce_type"] == b"crm.contacts.customer_registered.v1"
    assert headers["ce_tenantid"] == b"acme"
    assert headers["ce_sequence"] == b"3"
    assert headers["ce_time"] == b"2026-03-01T08:00:00Z"
    assert headers["content-type"] == b"application/json"
    assert EventEnvelope.from_kafka(record.key, record.value, record.headers) == ENVELOPE


def test_a_message_without_the_required_attributes_is_rejected() -> None:
    record = ENVELOPE.to_kafka()
    headers = [(k, v) for k, v in record.headers if k != "ce_type"]

    with pytest.raises(InvalidEnvelope, match="type"):
        EventEnvelope.from_kafka(record.key, record.value, headers)


def test_a_value_that_is_not_json_is_rejected() -> None:
    record = ENVELOPE.to_kafka()

    with pytest.raises(InvalidEnvelope, match="JSON"):
        EventEnvelope.from_kafka(record.key, b"\xff\x00", record.headers)


async def test_a_stock_cloudevents_sdk_reads_what_we_put_on_the_broker(
    kafka: KafkaSettings, unique: str
) -> None:
    topic = f"crm.envelope.{unique}"
    await ensure_topics(kafka, [topic])
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers)
    await producer.start()
    record = ENVELOPE.to_kafka()
    await send_retrying(producer, topic, key=record.key, value=record.value, headers=record.headers)
    await producer.stop()

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka.bootstrap_servers,
        auto_offset_reset="earliest",
        group_id=f"g-{unique}",
    )
    await consumer.start()
    try:
        message = await consumer.getone()
    finally:
        await consumer.stop()

    headers = {k: v for k, v in message.headers}
    core = ce_kafka.from_binary_event(ce_kafka.KafkaMessage(headers, message.key, message.value))
    assert core.get_id() == ENVELOPE.id
    assert core.get_type() == ENVELOPE.type
    assert core.get_source() == "/crm/contacts"
    assert core.get_subject() == "cust-42"
    assert core.get_extension("tenantid") == "acme"
    assert core.get_extension("partitionkey") == "cust-42"
    assert core.get_extension("correlationid") == "req-1"
    assert core.get_data() == ENVELOPE.data

    legacy = v1_from_binary(V1KafkaMessage(headers, message.key, message.value))
    assert legacy["id"] == ENVELOPE.id
    assert legacy["sequence"] == "3"
    assert legacy.data == ENVELOPE.data
