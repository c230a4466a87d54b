"""The customers the pipeline knows (ids only: no name, no contact data): the table of
the ``KnownCustomers`` projection, fed by ``crm.contacts.events``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime

from sqlalchemy import (
    Column,
    String,
    Table,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from libs.events.catalog.contacts import (
    CustomerMerged,
    CustomerMergedInto,
    CustomerRegistered,
    PersonalDataErased,
)
from libs.events.consumer import ReceivedEvent
from libs.events.kafka import service_topic
from libs.events.projection import Projection
from libs.platform.db import UtcDateTime, upsert_for

# --- customers -------------------------------------------------------------------------


class KnownCustomers(Projection):
    """Which customers exist in which tenant, and whom a merged one now counts for.

    Fed by the contacts topic; the write path also records a customer it had to ask
    contacts about (replication lag), so both insert idempotently.
    """

    name = "pipeline_customers"

    def __init__(self, generation: int = 1) -> None:
        super().__init__(generation)
        # What else erasing a customer must forget (the leads converted into it).
        self.on_erased: Callable[[AsyncConnection, str, str], Awaitable[None]] | None = None
        self.topics = [service_topic("contacts")]
        self.table = Table(
            self.table_name("known"),
            self.metadata,
            Column("tenant_id", String(64), primary_key=True),
            Column("customer_id", String(64), primary_key=True),
            # Set once merged: orders and deals of this id count for the survivor.
            Column("survivor_id", String(64)),
            Column("erased_at", UtcDateTime),
            Column("learnt_at", UtcDateTime, nullable=False),
        )

    async def apply(self, conn: AsyncConnection, event: ReceivedEvent) -> None:
        tenant_id = event.envelope.tenantid
        match event.event:
            case CustomerRegistered() | CustomerMerged():
                await self.learn(conn, tenant_id, event.event.customer_id)
            case CustomerMergedInto():
                await self.learn(conn, tenant_id, event.event.survivor_id)
                await self.learn(
                    conn, tenant_id, event.event.customer_id, survivor_id=event.event.survivor_id
                )
            case PersonalDataErased():
                await self.learn(conn, tenant_id, event.event.customer_id)
                await conn.execute(
                    update(self.table)
                    .where(
                        self.table.c.tenant_id == tenant_id,
                        self.table.c.customer_id == event.event.customer_id,
                    )
                    .values(erased_at=event.event.erased_at)
                )
                if self.on_erased is not None:
                    await self.on_erased(conn, tenant_id, event.event.customer_id)

    async def learn(
        self,
        conn: AsyncConnection,
        tenant_id: str,
        customer_id: str,
        *,
        survivor_id: str | None = None,
    ) -> None:
        row = {
            "tenant_id": tenant_id,
            "customer_id": customer_id,
            "survivor_id": survivor_id,
            "learnt_at": datetime.now(UTC),
        }
        statement = upsert_for(conn)(self.table).values(row)
        key = [self.table.c.tenant_id, self.table.c.customer_id]
        if survivor_id is None:
            await conn.execute(statement.on_conflict_do_nothing(index_elements=key))
        else:
            await conn.execute(
                statement.on_conflict_do_update(
                    index_elements=key, set_={"survivor_id": survivor_id}
                )
            )

    async def resolve(self, conn: AsyncConnection, tenant_id: str, customer_id: str) -> str | None:
        """The customer ``customer_id`` stands for now (its survivor once merged), or None
        when the pipeline has not (yet) heard of it in this tenant."""
        current, seen = customer_id, set()
        while current not in seen:
            seen.add(current)
            survivor = (
                await conn.execute(
                    select(self.table.c.survivor_id).where(
                        self.table.c.tenant_id == tenant_id, self.table.c.customer_id == current
                    )
                )
            ).first()
            if survivor is None:
                return None if current == customer_id else current
            if survivor[0] is None:
                return current
            current = survivor[0]
        return current

    async def resolve_many(
        self, conn: AsyncConnection, tenant_id: str, customer_ids: Sequence[str]
    ) -> dict[str, str]:
        """``resolve`` for many ids at once (imports): the known ones only."""
        found: dict[str, str] = {}
        for start in range(0, len(customer_ids), 1000):
            chunk = list(customer_ids[start : start + 1000])
            rows = await conn.execute(
                select(self.table.c.customer_id, self.table.c.survivor_id).where(
                    self.table.c.tenant_id == tenant_id, self.table.c.customer_id.in_(chunk)
                )
            )
            for customer_id, survivor_id in rows:
                if survivor_id is None:
                    found[customer_id] = customer_id
                else:  # merged: follow the chain the careful way
                    resolved = await self.resolve(conn, tenant_id, customer_id)
                    if resolved is not None:
                        found[customer_id] = resolved
        return found

    async def records_of(
        self, conn: AsyncConnection, tenant_id: str, customer_id: str
    ) -> list[str]:
        """The customer and every record merged into it (their orders are its orders)."""
        rows = await conn.execute(
            select(self.table.c.customer_id).where(
                self.table.c.tenant_id == tenant_id, self.table.c.survivor_id == customer_id
            )
        )
        return [customer_id, *sorted(r[0] for r in rows)]
