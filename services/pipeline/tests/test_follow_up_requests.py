"""Follow-up tasks the alerts service asks for: ``FollowUpTaskRequested`` on the alerts
topic (real broker) becomes a task in the pipeline (real PostgreSQL), once."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaProducer

from libs.events.catalog.alerts import FollowUpTaskRequested
from libs.events.envelope import EventEnvelope
from libs.events.kafka import KafkaSettings, ensure_topics, service_topic
from libs.events.projection import ProjectionRunner
from services.pipeline.handlers.follow_ups import UNASSIGNED
from services.pipeline.tests.conftest import Api, eventually
from testing.consumers import send_retrying

ALERTS = service_topic("alerts")


def request(
    customer_id: str, owner_id: str | None, due_at: datetime | None = None
) -> FollowUpTaskRequested:
    return FollowUpTaskRequested(
        alert_id=str(uuid.uuid4()),
        customer_id=customer_id,
        owner_id=owner_id,
        title="Churn risk 65/100: complaints increase, key contact changed",
        due_at=due_at or datetime.now(UTC) + timedelta(days=1),
        task_id=str(uuid.uuid4()),
    )


def envelope(
    event: FollowUpTaskRequested, tenant: str = "acme", at: datetime | None = None
) -> EventEnvelope:
    return EventEnvelope(
        id=str(uuid.uuid4()),
        source="/crm/alerts",
        type=type(event).type_name,
        subject=event.customer_id,
        time=at or datetime.now(UTC),
        tenantid=tenant,
        partitionkey=event.customer_id,
        sequence=3,
        data=event.model_dump(mode="json"),
        correlationid="corr-1",
    )


async def publish(kafka: KafkaSettings, *envelopes: EventEnvelope) -> None:
    await ensure_topics(kafka, [ALERTS])
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers)
    await producer.start()
    try:
        for e in envelopes:
            record = e.to_kafka()
            await send_retrying(
                producer, ALERTS, key=record.key, value=record.value, headers=record.headers
            )
    finally:
        await producer.stop()


async def tasks_of(api: Api, tenant: str = "acme", **params: str) -> list[dict[str, Any]]:
    response = await api.client.get("/api/v1/tasks", params=params, headers=api.auth(tenant))
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def applied(api: Api, at_least: int) -> None:
    runner: ProjectionRunner = api.app.state.follow_ups

    async def done() -> bool:
        return sum(runner.progress.values()) >= at_least

    await eventually(done)


async def test_a_request_becomes_the_owners_task_under_its_id_once(
    api: Api, kafka: KafkaSettings
) -> None:
    customer = await api.register()
    asked = request(customer, "u-7")
    first = envelope(asked)
    # The same message redelivered, and the same request published again by a relay
    # retry under another event id: still one task.
    again = envelope(asked)
    await publish(kafka, first, first, again)
    await applied(api, 3)

    found = await tasks_of(api, assignee="u-7")
    assert [t["id"] for t in found] == [asked.task_id]
    (task,) = found
    assert task["customer_id"] == customer
    assert task["title"] == asked.title
    assert task["status"] == "open"
    one = await api.client.get(f"/api/v1/tasks/{asked.task_id}", headers=api.auth())
    assert one.status_code == 200, one.text
    assert one.headers["ETag"] == '"1"'


async def test_a_completed_task_is_not_created_again_by_a_late_redelivery(
    api: Api, kafka: KafkaSettings
) -> None:
    customer = await api.register()
    asked = request(customer, "u-7")
    await publish(kafka, envelope(asked))
    await applied(api, 1)
    done = await api.client.post(
        f"/api/v1/tasks/{asked.task_id}/complete", json={}, headers=api.auth(subject="u-7")
    )
    assert done.status_code == 200, done.text

    await publish(kafka, envelope(asked))
    await applied(api, 2)
    (task,) = await tasks_of(api, customer_id=customer)
    assert task["status"] == "completed"


async def test_an_unowned_customers_task_goes_to_the_unassigned_pool_and_tenants_stay_apart(
    api: Api, kafka: KafkaSettings
) -> None:
    customer = await api.register(tenant="globex")
    # Requested three days ago, due two days ago (replayed late, a rebuild): decided as
    # of the request, not refused as backdated.
    requested_at = datetime.now(UTC) - timedelta(days=3)
    asked = request(customer, None, due_at=requested_at + timedelta(days=1))
    late = envelope(asked, tenant="globex", at=requested_at)
    await publish(kafka, late)
    await applied(api, 1)

    (task,) = await tasks_of(api, tenant="globex", assignee=UNASSIGNED)
    assert task["id"] == asked.task_id
    assert await tasks_of(api, tenant="acme", assignee=UNASSIGNED) == []
