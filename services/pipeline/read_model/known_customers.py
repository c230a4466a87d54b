"""The customers the pipeline knows (ids only: no name, no contact data): the table of
the ``KnownCustomers`` projection (``libs.events.known_customers``), fed by
``crm.contacts.events``. A merged one's orders and deals count for its survivor
(``records_of``); erasing a customer also forgets what the pipeline wrote about it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column
from sqlalchemy.ext.asyncio import AsyncConnection

from libs.events import known_customers
from libs.events.catalog.contacts import PersonalDataErased
from libs.platform.db import UtcDateTime


class KnownCustomers(known_customers.KnownCustomers):
    """Which customers exist in which tenant, and whom a merged one now counts for."""

    name = "pipeline_customers"

    def __init__(self, generation: int = 1) -> None:
        super().__init__(generation)
        # What else erasing a customer must forget (the leads converted into it).
        self.on_erased: Callable[[AsyncConnection, str, str], Awaitable[None]] | None = None

    def own_columns(self) -> list[Column[Any]]:
        return [
            Column("erased_at", UtcDateTime),
            Column("learnt_at", UtcDateTime, nullable=False),
        ]

    def learnt_values(self) -> dict[str, Any]:
        return {"learnt_at": datetime.now(UTC)}

    def erased_values(self, erased: PersonalDataErased) -> dict[str, Any]:
        return {"erased_at": erased.erased_at}

    async def forget(self, conn: AsyncConnection, tenant_id: str, customer_id: str) -> None:
        if self.on_erased is not None:
            await self.on_erased(conn, tenant_id, customer_id)
