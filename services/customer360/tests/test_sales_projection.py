"""The sales section through the real broker: the projector reads crm.pipeline.events
beside crm.contacts.events and shows both in one view."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import date, timedelta

import pytest_asyncio

from libs.events.catalog import DomainEvent
from libs.events.catalog.contacts import CustomerRegistered
from libs.events.catalog.pipeline import (
    DealOpened,
    DealStageChanged,
    OrderPlaced,
    OrderRefunded,
    TaskCreated,
)
from libs.events.envelope import EventEnvelope
from libs.events.kafka import KafkaSettings, service_topic
from services.customer360.tests.conftest import (
    T0,
    ContactsTopic,
    CustomerStream,
    RunningProjector,
    eventually,
)


@pytest_asyncio.fixture
async def pipeline(kafka: KafkaSettings) -> AsyncIterator[ContactsTopic]:
    topic = ContactsTopic(kafka, service_topic("pipeline"))
    yield topic
    await topic.close()


class PipelineStreams:
    """The pipeline's aggregates: one stream per deal, order or task, keyed by customer."""

    def __init__(self, tenant_id: str, customer_id: str) -> None:
        self.tenant_id, self.customer_id = tenant_id, customer_id
        self.versions: dict[str, int] = {}

    def __call__(self, stream_id: str, event: DomainEvent, minutes: int) -> EventEnvelope:
        self.versions[stream_id] = self.versions.get(stream_id, 0) + 1
        return EventEnvelope(
            id=str(uuid.uuid4()), source="/crm/pipeline", type=type(event).type_name,
            subject=stream_id, time=T0 + timedelta(minutes=minutes), tenantid=self.tenant_id,
            partitionkey=self.customer_id, sequence=self.versions[stream_id],
            data=event.model_dump(mode="json"),
        )


async def test_the_view_shows_the_customers_deals_orders_and_tasks(
    projector: RunningProjector, contacts: ContactsTopic, pipeline: ContactsTopic
) -> None:
    customer = CustomerStream("acme")
    cid = customer.customer_id
    sales = PipelineStreams("acme", cid)
    migrated = T0 - timedelta(days=700)
    await contacts.publish(customer(CustomerRegistered(
        customer_id=cid, tenant_id="acme", kind="company", name="Acme Trading",
        registered_at=T0)))
    await pipeline.publish(
        sales("d-1", DealOpened(deal_id="d-1", customer_id=cid, title="Forklifts",
                                amount=80_000_00, currency="CNY", stage="proposal",
                                probability=40, expected_close_on=date(2026, 5, 1)), 10),
        sales("d-1", DealStageChanged(deal_id="d-1", customer_id=cid, from_stage="proposal",
                                      to_stage="negotiation", probability=70), 20),
        sales("o-1", OrderPlaced(order_id="o-1", customer_id=cid, currency="CNY",
                                 total=12_000_00, placed_at=migrated), 30),
        sales("o-1", OrderRefunded(order_id="o-1", customer_id=cid, refund_id="r-1",
                                   amount=2_000_00, currency="CNY", remaining=10_000_00), 40),
        sales("t-1", TaskCreated(task_id="t-1", customer_id=cid, title="Site visit",
                                 due_at=T0 + timedelta(days=3), assignee_id="u-2",
                                 created_by="u-1"), 50),
        # A lead's task names no customer: nothing to show, nothing dead-lettered.
        sales("t-2", TaskCreated(task_id="t-2", lead_id="l-9", title="Qualify",
                                 due_at=T0, assignee_id="u-2", created_by="u-1"), 60),
    )

    async def shown() -> bool:
        view = await projector.reader.view("acme", cid)
        return view is not None and len(view.tasks) == 1

    await eventually(shown)
    view = await projector.reader.view("acme", cid)
    assert view is not None
    [deal] = view.deals
    assert (deal.title, deal.stage, deal.probability) == ("Forklifts", "negotiation", 70)
    [order] = view.orders
    assert (order.status, order.refunded, order.placed_at) == (
        "partly_refunded", 2_000_00, migrated)
    [cny] = view.purchases
    assert (cny.currency, cny.orders, cny.spent) == ("CNY", 1, 10_000_00)
    assert [t.task_id for t in view.tasks] == ["t-1"]
    # Both services' lines in one timeline, in the order things happened.
    assert [line.type.split(".")[1:3] for line in view.timeline] == [
        ["pipeline", "task_created"],
        ["pipeline", "order_refunded"],
        ["pipeline", "deal_stage_changed"],
        ["pipeline", "deal_opened"],
        ["contacts", "customer_registered"],
        ["pipeline", "order_placed"],  # placed before the customer was registered here
    ]
    # The contacts version (what ?min_version waits for) is the customer's own stream's.
    assert view.freshness.version == 1
