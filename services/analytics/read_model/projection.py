"""Writing the analytics tables: a batch of events folded into a few statements.

Rows are collected per table and inserted together (a redelivered event's rows hit
their primary key and change nothing); cancellations are applied after the batch's
orders. A merge is applied where it stands in the batch: what came before it is
written first, then the duplicate's orders, refunds, answers and interactions move
to the survivor, and later events about the duplicate land on the survivor. The
duplicate's own profile rows stay with it (the survivor's profile is its own; a
merged duplicate is in no population).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import Table, bindparam, func, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection

from libs.events.catalog.alerts import ChurnRiskChanged
from libs.events.catalog.contacts import (
    CustomerMergedInto,
    CustomerRegistered,
    CustomerTagged,
    CustomerUntagged,
    InteractionLogged,
    OwnerChanged,
    ProfileChanged,
)
from libs.events.catalog.loyalty import TierChanged
from libs.events.catalog.pipeline import (
    ContractRenewed,
    ContractSigned,
    ContractTerminated,
    OrderCancelled,
    OrderPlaced,
    OrderRefunded,
)
from libs.events.catalog.tickets import CsatAnswered, NpsAnswered, TicketOpened
from libs.events.consumer import ReceivedEvent
from libs.events.kafka import service_topic
from libs.events.projection import Projection
from libs.platform.db import upsert_into as insert
from services.analytics.domain.periods import period_of
from services.analytics.domain.sources import TOPICS
from services.analytics.read_model.tables import NAME, Tables


def encode(value: Any) -> str | None:
    """A custom field's value, typed (``1`` and ``"1"`` stay apart)."""
    return None if value is None else json.dumps(value)[:512]


@dataclass
class Batch:
    tables: Tables
    conn: AsyncConnection
    survivors: dict[tuple[str, str], str] = field(default_factory=dict)
    known: dict[tuple[str, str], None] = field(default_factory=dict)
    registered: dict[tuple[str, str], datetime] = field(default_factory=dict)
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    cancellations: list[dict[str, Any]] = field(default_factory=list)

    def customer(self, tenant_id: str, customer_id: str) -> str:
        survivor = self.survivors.get((tenant_id, customer_id), customer_id)
        self.known[(tenant_id, survivor)] = None
        return survivor

    def add(self, table: Table, **row: Any) -> None:
        self.rows.setdefault(table.name, []).append(row)

    def attribute(
        self, tenant_id: str, customer_id: str, event_id: str, at: datetime, name: str, value: Any
    ) -> None:
        self.add(
            self.tables.profile,
            tenant_id=tenant_id,
            event_id=event_id,
            attribute=name[:200],
            customer_id=customer_id,
            at=at,
            value=value,
        )

    async def load_survivors(self, events: Sequence[ReceivedEvent]) -> None:
        wanted = {
            (r.envelope.tenantid, str(customer_id))
            for r in events
            if (customer_id := getattr(r.event, "customer_id", None))
        }
        c = self.tables.customers
        for start in range(0, len(wanted), 500):
            chunk = list(wanted)[start : start + 500]
            rows = await self.conn.execute(
                select(c.c.tenant_id, c.c.customer_id, c.c.merged_into).where(
                    tuple_(c.c.tenant_id, c.c.customer_id).in_(chunk), c.c.merged_into.is_not(None)
                )
            )
            for tenant_id, customer_id, merged_into in rows:
                self.survivors[(tenant_id, customer_id)] = merged_into

    async def take(self, received: ReceivedEvent) -> None:
        event: Any = received.event
        envelope = received.envelope
        if isinstance(event, CustomerMergedInto):
            await self.merge(envelope.tenantid, event.customer_id, event.survivor_id)
            return
        customer_id = getattr(event, "customer_id", None)
        if not customer_id:
            return
        cid = self.customer(envelope.tenantid, str(customer_id))
        fact = Fact(self, envelope.tenantid, cid, envelope.id, envelope.time)
        self.take_profile(fact, event)
        self.take_interaction(fact, event)
        self.take_order(fact, event)
        self.take_contract(fact, event)
        self.take_service(fact, event)

    def take_profile(self, fact: Fact, event: Any) -> None:
        """Registration, profile, tags, owner, loyalty tier and churn level."""
        attribute = fact.attribute
        match event:
            case CustomerRegistered():
                self.registered[(fact.tenant_id, fact.customer_id)] = event.registered_at
                at = event.registered_at
                attribute("kind", event.kind, at)
                attribute("owner", event.owner_id, at)
                for tag in event.tags:
                    attribute(f"tag:{tag}", "1", at)
                for name, value in event.attributes.items():
                    attribute(f"attr:{name}", encode(value), at)
            case ProfileChanged():
                for name, value in event.attributes.items():
                    attribute(f"attr:{name}", encode(value))
                for name in event.attributes_removed:
                    attribute(f"attr:{name}", None)
            case CustomerTagged():
                attribute(f"tag:{event.tag}", "1")
            case CustomerUntagged():
                attribute(f"tag:{event.tag}", None)
            case OwnerChanged():
                attribute("owner", event.to_owner_id)
            case TierChanged():
                attribute("tier", event.to_tier, event.changed_at)
            case ChurnRiskChanged():
                attribute("churn", event.to_level, event.as_of)

    def take_interaction(self, fact: Fact, event: Any) -> None:
        if isinstance(event, InteractionLogged):
            self.add(
                self.tables.interactions,
                tenant_id=fact.tenant_id,
                interaction_id=event.interaction_id,
                customer_id=fact.customer_id,
                channel=event.channel,
                at=event.occurred_at,
            )

    def take_order(self, fact: Fact, event: Any) -> None:
        """Orders placed, refunded and cancelled (cancellations apply after the batch)."""
        tenant, cid, time = fact.tenant_id, fact.customer_id, fact.time
        match event:
            case OrderPlaced():
                self.add(
                    self.tables.orders,
                    tenant_id=tenant,
                    order_id=event.order_id,
                    customer_id=cid,
                    placed_at=event.placed_at,
                    month=period_of(event.placed_at, "month"),
                    week=period_of(event.placed_at, "week"),
                    total=event.total,
                    cancelled_at=None,
                )
            case OrderRefunded():
                self.add(
                    self.tables.refunds,
                    tenant_id=tenant,
                    refund_id=event.refund_id,
                    order_id=event.order_id,
                    customer_id=cid,
                    at=time,
                    amount=event.amount,
                )
            case OrderCancelled():
                self.cancellations.append({"t": tenant, "o": event.order_id, "at": time})

    def take_contract(self, fact: Fact, event: Any) -> None:
        if isinstance(event, ContractSigned | ContractRenewed | ContractTerminated):
            self.add(
                self.tables.contracts,
                tenant_id=fact.tenant_id,
                event_id=fact.event_id,
                contract_id=event.contract_id,
                customer_id=fact.customer_id,
                at=fact.time,
                starts_on=event.starts_on if isinstance(event, ContractSigned) else None,
                ends_on=event.terminated_on
                if isinstance(event, ContractTerminated)
                else event.ends_on,
            )

    def take_service(self, fact: Fact, event: Any) -> None:
        """Tickets opened and the NPS and CSAT answers (an NPS group is also profile)."""
        tenant, cid, time = fact.tenant_id, fact.customer_id, fact.time
        match event:
            case TicketOpened():
                self.add(
                    self.tables.tickets,
                    tenant_id=tenant,
                    ticket_id=event.ticket_id,
                    customer_id=cid,
                    category=event.category,
                    opened_at=time,
                )
            case NpsAnswered():
                self.add(
                    self.tables.surveys,
                    tenant_id=tenant,
                    survey_id=event.survey_id,
                    kind="nps",
                    customer_id=cid,
                    ticket_id=None,
                    score=event.score,
                    at=time,
                )
                fact.attribute("nps", event.group)
            case CsatAnswered():
                self.add(
                    self.tables.surveys,
                    tenant_id=tenant,
                    survey_id=event.survey_id,
                    kind="csat",
                    customer_id=cid,
                    ticket_id=event.ticket_id,
                    score=event.score,
                    at=time,
                )

    async def merge(self, tenant_id: str, duplicate: str, survivor: str) -> None:
        await self.flush()
        survivor = self.survivors.get((tenant_id, survivor), survivor)
        self.customer(tenant_id, survivor)
        self.customer(tenant_id, duplicate)
        await self.flush()
        t = self.tables
        for table in t.by_customer():
            if table is t.profile:
                continue
            await self.conn.execute(
                update(table)
                .where(table.c.tenant_id == tenant_id, table.c.customer_id == duplicate)
                .values(customer_id=survivor)
            )
        c = t.customers
        await self.conn.execute(
            update(c)
            .where(
                c.c.tenant_id == tenant_id,
                (c.c.customer_id == duplicate) | (c.c.merged_into == duplicate),
            )
            .values(merged_into=survivor)
        )
        for key, merged_into in list(self.survivors.items()):
            if key[0] == tenant_id and merged_into == duplicate:
                self.survivors[key] = survivor
        self.survivors[(tenant_id, duplicate)] = survivor

    async def flush(self) -> None:
        t, conn = self.tables, self.conn
        if self.known:
            await conn.execute(
                insert(conn, t.customers).on_conflict_do_nothing(),
                [
                    {
                        "tenant_id": k[0],
                        "customer_id": k[1],
                        "registered_at": None,
                        "merged_into": None,
                    }
                    for k in self.known
                ],
            )
            self.known = {}
        if self.registered:
            stmt = insert(conn, t.customers)
            await conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["tenant_id", "customer_id"],
                    set_={"registered_at": stmt.excluded.registered_at},
                ),
                [
                    {
                        "tenant_id": k[0],
                        "customer_id": k[1],
                        "registered_at": at,
                        "merged_into": None,
                    }
                    for k, at in self.registered.items()
                ],
            )
            self.registered = {}
        for table in (
            t.orders,
            t.refunds,
            t.profile,
            t.surveys,
            t.tickets,
            t.interactions,
            t.contracts,
        ):
            rows = self.rows.pop(table.name, None)
            if rows:
                await conn.execute(insert(conn, table).on_conflict_do_nothing(), rows)
        if self.cancellations:
            o = t.orders
            await conn.execute(
                update(o)
                .where(
                    o.c.tenant_id == bindparam("t"),
                    o.c.order_id == bindparam("o"),
                    o.c.cancelled_at.is_(None),
                )
                .values(cancelled_at=bindparam("at")),
                self.cancellations,
            )
            self.cancellations = []


@dataclass(frozen=True, slots=True)
class Fact:
    """What an event is about: its tenant, the (surviving) customer, the event and when."""

    batch: Batch
    tenant_id: str
    customer_id: str
    event_id: str
    time: datetime

    def attribute(self, name: str, value: Any, at: datetime | None = None) -> None:
        """A profile change, at ``at`` (the event's time unless told)."""
        when = self.time if at is None else at
        self.batch.attribute(self.tenant_id, self.customer_id, self.event_id, when, name, value)


class AnalyticsProjection(Projection):
    """Pre-aggregated, business-dated facts from the five topics."""

    name: ClassVar[str] = NAME

    def __init__(self, generation: int = 1) -> None:
        super().__init__(generation)
        self.topics = [service_topic(t) for t in TOPICS]
        self.tables = Tables.of(generation, self.metadata, self.table_name)

    async def apply(self, conn: AsyncConnection, event: ReceivedEvent) -> None:
        await self.apply_many(conn, [event])

    async def apply_many(self, conn: AsyncConnection, events: Sequence[ReceivedEvent]) -> None:
        batch = Batch(self.tables, conn)
        await batch.load_survivors(events)
        for received in events:
            await batch.take(received)
        await batch.flush()

    async def count_for_rebuild(self, conn: AsyncConnection) -> int:
        """Registered customers (a row only other services' events made is not one)."""
        c = self.tables.customers
        count = await conn.scalar(
            select(func.count()).select_from(c).where(c.c.registered_at.is_not(None))
        )
        return int(count or 0)


def projection_factory(generation: int) -> AnalyticsProjection:
    return AnalyticsProjection(generation)
