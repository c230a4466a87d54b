"""The customers the tickets service knows, learnt from ``crm.contacts.events``.

Tickets never read contacts' tables: this projection keeps a small table per
generation (tenant, customer, tags, survivor after a merge), which is enough to
refuse a ticket for an unknown customer and to pick tag-specific SLA targets.
A customer registered a moment ago may not be here yet; ``CustomerDirectory``
then asks contacts over HTTP with the caller's own token.

Merges: the duplicate's tickets follow the survivor (``TicketCustomerChanged``).

Erasure: ``PersonalDataErased`` destroys the customer's key in this service's
event store too, so what tickets copied (requester details, subjects, what the
customer wrote) becomes unreadable everywhere, as in contacts, and blanks the
subjects of the customer's tickets in the list.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import httpx
from sqlalchemy import JSON, Boolean, Column, String, Table, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from libs.events.catalog.contacts import (
    CustomerMergedInto,
    CustomerRegistered,
    CustomerTagged,
    CustomerUntagged,
    PersonalDataErased,
)
from libs.events.catalog.contacts import catalog as contacts_catalog
from libs.events.catalog.tickets import PERSONAL_DATA, TicketCustomerChanged
from libs.events.consumer import ReceivedEvent
from libs.events.kafka import service_topic
from libs.events.projection import Projection, active_generation
from libs.events.store import EventStore, NewEvent, personal_data_keys
from libs.events.vault import PersonalDataVault
from libs.platform.errors import DomainError, NotFound
from services.tickets.read_model.ticket_list import forget_subjects, tickets

log = logging.getLogger(__name__)

catalog = contacts_catalog
_VAULT = PersonalDataVault(personal_data_keys, PERSONAL_DATA)


class KnownCustomers(Projection):
    name = "tickets_customers"

    def __init__(self, generation: int = 1) -> None:
        super().__init__(generation)
        self.topics = (service_topic("contacts"),)
        self.customers = Table(
            self.table_name("known"),
            self.metadata,
            Column("tenant_id", String(64), primary_key=True),
            Column("customer_id", String(64), primary_key=True),
            Column("tags", JSON, nullable=False, default=list),
            Column("survivor_id", String(64)),
            Column("erased", Boolean, nullable=False, default=False),
        )

    async def apply(self, conn: AsyncConnection, event: ReceivedEvent) -> None:
        tenant = event.envelope.tenantid
        t = self.customers
        match event.event:
            case CustomerRegistered() as e:
                insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
                await conn.execute(
                    insert(t)
                    .values(tenant_id=tenant, customer_id=e.customer_id, tags=sorted(e.tags))
                    .on_conflict_do_nothing()
                )
            case CustomerTagged() | CustomerUntagged() as e:
                tags = await self._tags(conn, tenant, e.customer_id)
                if tags is None:
                    return
                changed = (
                    set(tags) | {e.tag} if isinstance(e, CustomerTagged) else set(tags) - {e.tag}
                )
                await conn.execute(
                    t.update()
                    .where(t.c.tenant_id == tenant, t.c.customer_id == e.customer_id)
                    .values(tags=sorted(changed))
                )
            case CustomerMergedInto() as e:
                await conn.execute(
                    t.update()
                    .where(t.c.tenant_id == tenant, t.c.customer_id == e.customer_id)
                    .values(survivor_id=e.survivor_id)
                )
                await _follow_survivor(conn, tenant, e, event.envelope.time)
            case PersonalDataErased() as e:
                await _VAULT.erase(conn, tenant, e.customer_id)
                await forget_subjects(conn, tenant, e.customer_id)
                await conn.execute(
                    t.update()
                    .where(t.c.tenant_id == tenant, t.c.customer_id == e.customer_id)
                    .values(erased=True)
                )

    async def _tags(self, conn: AsyncConnection, tenant: str, customer_id: str) -> list[str] | None:
        row = (
            await conn.execute(
                select(self.customers.c.tags).where(
                    self.customers.c.tenant_id == tenant,
                    self.customers.c.customer_id == customer_id,
                )
            )
        ).first()
        return None if row is None else list(row[0])


async def _follow_survivor(
    conn: AsyncConnection, tenant_id: str, merged: CustomerMergedInto, at: datetime
) -> None:
    """The duplicate's tickets become the survivor's: ``TicketCustomerChanged`` on each,
    in this batch's transaction. A ticket already moved (a redelivery, a rebuild) is not
    in the query any more, so nothing is moved twice."""
    store = EventStore(conn.engine, personal_data=PERSONAL_DATA)
    rows = await conn.execute(
        select(tickets.c.ticket_id, tickets.c.version).where(
            tickets.c.tenant_id == tenant_id, tickets.c.customer_id == merged.customer_id
        )
    )
    for ticket_id, version in rows.all():
        moved = TicketCustomerChanged(
            ticket_id=ticket_id,
            customer_id=merged.survivor_id,
            previous_customer_id=merged.customer_id,
        )
        new = NewEvent.from_domain(moved, partition_key=merged.survivor_id, occurred_at=at)
        await store.append(tenant_id, ticket_id, version, [new], conn=conn)
        await conn.execute(
            tickets.update()
            .where(tickets.c.tenant_id == tenant_id, tickets.c.ticket_id == ticket_id)
            .values(customer_id=merged.survivor_id, version=version + 1)
        )


def projection_factory(generation: int) -> KnownCustomers:
    return KnownCustomers(generation)


class UnknownCustomer(NotFound):
    def __init__(self, customer_id: str) -> None:
        super().__init__(
            f"customer {customer_id} not found", customer_id=customer_id, field="customer_id"
        )


class ContactsUnavailable(DomainError):
    """Contacts could not say whether a customer not seen yet exists: try again."""

    status_code = 503

    def __init__(self, customer_id: str) -> None:
        super().__init__(
            f"cannot confirm customer {customer_id} right now; try again shortly",
            headers={"Retry-After": "2"},
            customer_id=customer_id,
        )


@dataclass(frozen=True)
class KnownCustomer:
    id: str
    tags: tuple[str, ...] = ()


@dataclass
class CustomerDirectory:
    """Whether a customer exists in the tenant: the projection first, then contacts."""

    engine: AsyncEngine
    contacts_url: str | None
    timeout_seconds: float = 3.0
    # Tests put contacts' app here (httpx.ASGITransport); None is the network.
    transport: httpx.AsyncBaseTransport | None = None

    async def find(self, tenant_id: str, customer_id: str, bearer: str | None) -> KnownCustomer:
        generation = await active_generation(self.engine, KnownCustomers.name) or 1
        table = KnownCustomers(generation).customers
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(table.c.tags, table.c.survivor_id).where(
                        table.c.tenant_id == tenant_id, table.c.customer_id == customer_id
                    )
                )
            ).first()
        if row is not None:
            if row.survivor_id:  # a merged duplicate: its tickets are the survivor's
                return await self.find(tenant_id, row.survivor_id, bearer)
            return KnownCustomer(customer_id, tuple(row.tags))
        return await self._ask_contacts(customer_id, bearer)

    async def _ask_contacts(self, customer_id: str, bearer: str | None) -> KnownCustomer:
        if not self.contacts_url or not bearer:
            raise UnknownCustomer(customer_id)
        # The caller's own token: contacts applies its tenant and its permissions.
        async with httpx.AsyncClient(
            timeout=self.timeout_seconds, transport=self.transport
        ) as client:
            try:
                response = await client.get(
                    f"{self.contacts_url.rstrip('/')}/api/v1/customers/{customer_id}",
                    headers={"Authorization": f"Bearer {bearer}"},
                )
            except httpx.HTTPError as exc:
                log.warning("contacts unreachable checking customer %s: %s", customer_id, exc)
                raise ContactsUnavailable(customer_id) from None
        if response.status_code >= 500:
            raise ContactsUnavailable(customer_id)
        if response.status_code != 200:
            raise UnknownCustomer(customer_id)
        body = response.json()
        return KnownCustomer(str(body.get("id", customer_id)), tuple(body.get("tags", ())))


async def create_tables(engine: AsyncEngine, generations: Sequence[int] = (1,)) -> None:
    async with engine.begin() as conn:
        for generation in generations:
            await conn.run_sync(KnownCustomers(generation).metadata.create_all)
