"""The service and loyalty sections through the real broker: the projector reads
crm.tickets.events and crm.loyalty.events beside crm.contacts.events, into one view."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import date, timedelta

import pytest_asyncio

from libs.events.catalog import DomainEvent
from libs.events.catalog.contacts import CustomerRegistered, PersonalDataErased
from libs.events.catalog.loyalty import (
    CheckedIn,
    LotDraw,
    LoyaltyRulesSet,
    PointsEarned,
    PointsRedeemed,
    ProgramRules,
    TierChanged,
)
from libs.events.catalog.tickets import (
    CsatAnswered,
    NpsAnswered,
    SlaBreached,
    TicketOpened,
    TicketReplied,
    TicketStatusChanged,
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
async def tickets(kafka: KafkaSettings) -> AsyncIterator[ContactsTopic]:
    topic = ContactsTopic(kafka, service_topic("tickets"))
    yield topic
    await topic.close()


@pytest_asyncio.fixture
async def loyalty(kafka: KafkaSettings) -> AsyncIterator[ContactsTopic]:
    topic = ContactsTopic(kafka, service_topic("loyalty"))
    yield topic
    await topic.close()


class Streams:
    """Another service's aggregates: one stream each, keyed by the customer."""

    def __init__(self, service: str, tenant_id: str, customer_id: str) -> None:
        self.service, self.tenant_id, self.customer_id = service, tenant_id, customer_id
        self.versions: dict[str, int] = {}

    def __call__(self, stream_id: str, event: DomainEvent, minutes: int) -> EventEnvelope:
        self.versions[stream_id] = self.versions.get(stream_id, 0) + 1
        return EventEnvelope(
            id=str(uuid.uuid4()), source=f"/crm/{self.service}", type=type(event).type_name,
            subject=stream_id, time=T0 + timedelta(minutes=minutes), tenantid=self.tenant_id,
            partitionkey=self.customer_id, sequence=self.versions[stream_id],
            data=event.model_dump(mode="json"),
        )


async def test_the_view_shows_open_tickets_breaches_surveys_and_forgets_their_text(
    projector: RunningProjector, contacts: ContactsTopic, tickets: ContactsTopic
) -> None:
    customer = CustomerStream("acme")
    cid = customer.customer_id
    service = Streams("tickets", "acme", cid)
    await contacts.publish(customer(CustomerRegistered(
        customer_id=cid, tenant_id="acme", kind="person", name="Li Na", registered_at=T0)))
    await tickets.publish(
        service("k-1", TicketOpened(ticket_id="k-1", customer_id=cid, subject="Li Na: refund",
                                    channel="wechat", category="complaint", priority="high",
                                    opened_by="u-1"), 10),
        service("k-2", TicketOpened(ticket_id="k-2", customer_id=cid, subject="Manual",
                                    channel="email", category="question", priority="low",
                                    opened_by="u-1"), 11),
        service("k-1", TicketReplied(ticket_id="k-1", customer_id=cid, reply_id="r-1",
                                     public=True, body="Dear Li Na", by="a-1"), 20),
        service("k-1", SlaBreached(ticket_id="k-1", customer_id=cid, target="resolution",
                                   due_at=T0 + timedelta(hours=8), priority="high",
                                   policy="standard"), 480),
        service("k-2", TicketStatusChanged(ticket_id="k-2", customer_id=cid,
                                           from_status="open", to_status="solved", by="a-1"),
                30),
        service("k-2", TicketStatusChanged(ticket_id="k-2", customer_id=cid,
                                           from_status="solved", to_status="closed", by="a-1"),
                31),
        service("s-1", CsatAnswered(survey_id="s-1", customer_id=cid, ticket_id="k-2", score=5,
                                    satisfied=True, comment="Li Na says thanks"), 40),
        service("s-2", NpsAnswered(survey_id="s-2", customer_id=cid, score=10,
                                   group="promoter"), 50),
    )

    async def shown() -> bool:
        view = await projector.reader.view("acme", cid)
        return view is not None and view.service.last_nps is not None

    await eventually(shown)
    view = await projector.reader.view("acme", cid)
    assert view is not None
    [complaint] = view.tickets
    assert (complaint.ticket_id, complaint.subject, complaint.category) == (
        "k-1", "Li Na: refund", "complaint")
    assert (complaint.status, complaint.priority, complaint.sla_breached) == (
        "open", "high", True)
    assert view.service.breaches == 1
    assert view.service.last_csat is not None and view.service.last_csat.score == 5
    assert view.service.last_nps is not None and view.service.last_nps.group == "promoter"
    types = [line.type.split(".")[2] for line in view.timeline]
    assert types[0] == "sla_breached"  # dated by its due time, the latest here
    assert {"ticket_opened", "ticket_replied", "csat_answered", "nps_answered"} <= set(types)
    # Tickets are their own streams: the contacts version is still the customer's.
    assert view.freshness.version == 1
    # Each line as data too, the ticket named by its subject.
    replied = next(line for line in view.timeline if line.type.endswith("ticket_replied.v1"))
    assert replied.facts is not None
    assert (replied.facts["ticket_id"], replied.facts["ticket_subject"]) == ("k-1", "Li Na: refund")
    assert (replied.facts["body"], replied.facts["public"], replied.facts["by"]) == (
        "Dear Li Na", True, "a-1")

    await contacts.publish(customer(PersonalDataErased(
        customer_id=cid, erased_at=T0 + timedelta(days=1), by="u-admin")))
    await projector.until_version("acme", cid, 2)
    erased = await projector.reader.view("acme", cid)
    assert erased is not None
    assert erased.tickets[0].subject == ""
    assert erased.service.last_csat is not None and erased.service.last_csat.comment == ""
    assert not any("Li Na" in line.summary for line in erased.timeline)
    assert not any("Li Na" in json.dumps(line.facts) for line in erased.timeline)
    replied = next(line for line in erased.timeline if line.type.endswith("ticket_replied.v1"))
    assert replied.facts == {
        "ticket_id": "k-1", "reply_id": "r-1", "public": True, "by": "a-1", "first_response": False}


async def test_the_view_shows_the_loyalty_balance_tier_and_recent_lines(
    projector: RunningProjector, contacts: ContactsTopic, loyalty: ContactsTopic
) -> None:
    customer = CustomerStream("acme")
    cid = customer.customer_id
    ledger = Streams("loyalty", "acme", cid)
    await contacts.publish(customer(CustomerRegistered(
        customer_id=cid, tenant_id="acme", kind="person", name="Wang Wei", registered_at=T0)))
    await loyalty.publish(
        # Tenant-level: keyed by "rules", about no customer; nothing to show, nothing stuck.
        Streams("loyalty", "acme", "rules")("rules", LoyaltyRulesSet(
            rules=ProgramRules(), effective_from=T0, by="m-1"), 1),
        ledger(cid, PointsEarned(customer_id=cid, lot_id="lot-1", points=1_200, reason="order",
                                 source_event_id="e-1", earned_at=T0 - timedelta(days=30),
                                 order_id="o-1", order_amount=1_200_00, currency="CNY"), 10),
        ledger(cid, TierChanged(customer_id=cid, from_tier="普通会员", to_tier="silver",
                                qualifying_spend=1_200_00, reason="order",
                                changed_at=T0 - timedelta(days=29)), 11),
        ledger(cid, CheckedIn(customer_id=cid, day=date(2026, 3, 2), streak=1), 12),
        ledger(cid, PointsEarned(customer_id=cid, lot_id="lot-2", points=1, reason="check_in",
                                 source_event_id="e-2", earned_at=T0 + timedelta(minutes=12)),
               13),
        ledger(cid, PointsRedeemed(customer_id=cid, redemption_id="rd-1", reward_id="mug",
                                   points=500, draws=[LotDraw(lot_id="lot-1", points=500)],
                                   idempotency_key="k-1", by="u-2"), 20),
    )

    async def shown() -> bool:
        view = await projector.reader.view("acme", cid)
        return view is not None and view.loyalty is not None and len(view.loyalty.lines) == 3

    await eventually(shown)
    view = await projector.reader.view("acme", cid)
    assert view is not None and view.loyalty is not None
    assert (view.loyalty.balance, view.loyalty.tier) == (701, "silver")
    assert [(line.points, line.reason) for line in view.loyalty.lines] == [
        (-500, "redemption"), (1, "check_in"), (1_200, "order")]
    types = [line.type.split(".")[2] for line in view.timeline]
    assert types[:3] == ["points_redeemed", "points_earned", "checked_in"]
    # An order's points earned 30 days back read as they happened (before registration).
    assert types[-3:] == ["customer_registered", "tier_changed", "points_earned"]
    assert view.freshness.version == 1
