"""The customers the tickets service knows, learnt from ``crm.contacts.events``
(``libs.events.known_customers``): enough to refuse a ticket for an unknown customer
and to pick tag-specific SLA targets. What is the tickets service's own:

Merges: the duplicate's tickets follow the survivor (``TicketCustomerChanged``).

Erasure: ``PersonalDataErased`` destroys the customer's key in this service's
event store too, so what tickets copied (requester details, subjects, what the
customer wrote) becomes unreadable everywhere, as in contacts, and blanks the
subjects of the customer's tickets in the list.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import Boolean, Column, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from libs.events import known_customers
from libs.events.catalog.contacts import CustomerMergedInto, PersonalDataErased
from libs.events.catalog.contacts import catalog as contacts_catalog
from libs.events.catalog.tickets import PERSONAL_DATA, TicketCustomerChanged
from libs.events.known_customers import CustomerDirectory
from libs.events.store import EventStore, NewEvent, personal_data_keys
from libs.events.vault import PersonalDataVault
from services.tickets.read_model.ticket_list import forget_subjects, tickets

catalog = contacts_catalog
_VAULT = PersonalDataVault(personal_data_keys, PERSONAL_DATA)


class KnownCustomers(known_customers.KnownCustomers):
    name = "tickets_customers"
    keeps_tags: ClassVar[bool] = True

    def own_columns(self) -> list[Column[Any]]:
        return [Column("erased", Boolean, nullable=False, default=False)]

    def erased_values(self, erased: PersonalDataErased) -> dict[str, Any]:
        return {"erased": True}

    async def merged(
        self, conn: AsyncConnection, tenant_id: str, merged: CustomerMergedInto, at: datetime
    ) -> None:
        await _follow_survivor(conn, tenant_id, merged, at)

    async def forget(self, conn: AsyncConnection, tenant_id: str, customer_id: str) -> None:
        await _VAULT.erase(conn, tenant_id, customer_id)
        await forget_subjects(conn, tenant_id, customer_id)


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


def customer_directory(engine: AsyncEngine, contacts_url: str | None) -> CustomerDirectory:
    """The directory over the generation serving now (the projection can be rebuilt)."""
    return CustomerDirectory(
        projection_factory(1), engine, contacts_url, generations=projection_factory
    )

