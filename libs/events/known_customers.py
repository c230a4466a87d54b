"""The customers another service knows, learnt from ``crm.contacts.events``, and the
directory that answers "does this customer exist in the tenant?" (decision 0016).

A service never reads contacts' tables. ``KnownCustomers`` keeps a small table per
generation: tenant, customer, whom a merged one now counts for (its survivor) and,
for a service that needs them, its tags. A service adds its own columns and what a
merge or an erasure means to it (``own_columns``, ``merged``, ``forget``).

A customer registered a moment ago may not be in the table yet (the topic lags):
``CustomerDirectory`` then asks contacts over HTTP with the caller's bare bearer token
(``libs.platform.dependencies.bearer_token``), so contacts answers for the caller's
tenant and permissions only, and records the answer so it asks only once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

import httpx
from sqlalchemy import JSON, Column, String, Table, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from libs.events.catalog.contacts import (
    CustomerMerged,
    CustomerMergedInto,
    CustomerRegistered,
    CustomerTagged,
    CustomerUntagged,
    PersonalDataErased,
)
from libs.events.consumer import ReceivedEvent
from libs.events.kafka import service_topic
from libs.events.projection import Projection, active_generation
from libs.platform.db import upsert_for
from libs.platform.errors import DomainError, NotFound

log = logging.getLogger(__name__)

# Long enough for contacts under load; a caller waits no longer before a 503.
CONTACTS_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class KnownCustomer:
    """A customer of the tenant as the service knows it: the id it counts as now (a
    merged duplicate's survivor) and its tags (empty where the service keeps none)."""

    id: str
    tags: tuple[str, ...] = ()


class KnownCustomers(Projection):
    """Which customers exist in which tenant, and whom a merged one now counts for.

    Fed by the contacts topic; the directory also records a customer it had to ask
    contacts about, so every write here is idempotent.
    """

    # Tags follow CustomerRegistered/Tagged/Untagged/Merged (tag-specific rules).
    keeps_tags: ClassVar[bool] = False

    def __init__(self, generation: int = 1) -> None:
        super().__init__(generation)
        self.topics = (service_topic("contacts"),)
        tags = [Column("tags", JSON, nullable=False, default=list)] if self.keeps_tags else []
        self.table = Table(
            self.table_name("known"),
            self.metadata,
            Column("tenant_id", String(64), primary_key=True),
            Column("customer_id", String(64), primary_key=True),
            *tags,
            # Set once merged: the duplicate's records count for the survivor.
            Column("survivor_id", String(64)),
            *self.own_columns(),
        )

    # --- what a service adds -------------------------------------------------------

    def own_columns(self) -> list[Column[Any]]:
        """The service's own columns (nullable or with a default)."""
        return []

    def learnt_values(self) -> dict[str, Any]:
        """The own columns of a row learnt now."""
        return {}

    def erased_values(self, erased: PersonalDataErased) -> dict[str, Any]:
        """The own columns of a customer whose personal data was erased."""
        return {}

    async def merged(
        self, conn: AsyncConnection, tenant_id: str, merged: CustomerMergedInto, at: datetime
    ) -> None:
        """What else a merge moves (in the batch's transaction); ``at``: when it was."""

    async def forget(self, conn: AsyncConnection, tenant_id: str, customer_id: str) -> None:
        """What else erasing a customer must forget (in the batch's transaction)."""

    # --- the topic -----------------------------------------------------------------

    async def apply(self, conn: AsyncConnection, event: ReceivedEvent) -> None:
        tenant_id = event.envelope.tenantid
        match event.event:
            case CustomerRegistered() as e:
                # Its customer's first event: every later tag change follows it.
                await self.learn(conn, tenant_id, e.customer_id, tags=e.tags, retag=True)
            case CustomerMerged() as e:
                await self.learn(conn, tenant_id, e.customer_id)
                await self._retag(conn, tenant_id, e.customer_id, add=e.tags)
            case CustomerMergedInto() as e:
                await self.learn(conn, tenant_id, e.survivor_id)
                await self.learn(conn, tenant_id, e.customer_id, survivor_id=e.survivor_id)
                await self.merged(conn, tenant_id, e, event.envelope.time)
            case CustomerTagged() as e:
                await self._retag(conn, tenant_id, e.customer_id, add=[e.tag])
            case CustomerUntagged() as e:
                await self._retag(conn, tenant_id, e.customer_id, remove=[e.tag])
            case PersonalDataErased() as e:
                await self.learn(conn, tenant_id, e.customer_id)
                if values := self.erased_values(e):
                    where = self._key(tenant_id, e.customer_id)
                    await conn.execute(self.table.update().where(*where).values(values))
                await self.forget(conn, tenant_id, e.customer_id)

    async def learn(
        self,
        conn: AsyncConnection,
        tenant_id: str,
        customer_id: str,
        *,
        survivor_id: str | None = None,
        tags: Iterable[str] = (),
        retag: bool = False,
    ) -> None:
        """Record that the customer exists; a survivor given replaces the one recorded,
        and so do ``tags`` with ``retag`` (else they are only those of a new row)."""
        row = {
            "tenant_id": tenant_id,
            "customer_id": customer_id,
            "survivor_id": survivor_id,
            **self.learnt_values(),
        }
        changes: dict[str, Any] = {} if survivor_id is None else {"survivor_id": survivor_id}
        if self.keeps_tags:
            row["tags"] = sorted(set(tags))
            if retag:
                changes["tags"] = row["tags"]
        statement = upsert_for(conn)(self.table).values(row)
        key = [self.table.c.tenant_id, self.table.c.customer_id]
        if changes:
            statement = statement.on_conflict_do_update(index_elements=key, set_=changes)
        else:
            statement = statement.on_conflict_do_nothing(index_elements=key)
        await conn.execute(statement)

    async def _retag(
        self,
        conn: AsyncConnection,
        tenant_id: str,
        customer_id: str,
        *,
        add: Iterable[str] = (),
        remove: Iterable[str] = (),
    ) -> None:
        if not self.keeps_tags:
            return
        current = await conn.scalar(
            select(self.table.c.tags).where(*self._key(tenant_id, customer_id))
        )
        if current is None:  # not registered here (yet): its registration brings them
            return
        tags = (set(current) | set(add)) - set(remove)
        await conn.execute(
            self.table.update()
            .where(*self._key(tenant_id, customer_id))
            .values(tags=sorted(tags))
        )

    # --- the questions -------------------------------------------------------------

    async def find(
        self, conn: AsyncConnection, tenant_id: str, customer_id: str
    ) -> KnownCustomer | None:
        """The customer ``customer_id`` stands for now (its survivor once merged), or
        None when this service has not (yet) heard of it in this tenant."""
        columns = [self.table.c.survivor_id, *([self.table.c.tags] if self.keeps_tags else [])]
        current, seen = customer_id, {customer_id}
        while True:
            where = self._key(tenant_id, current)
            row = (await conn.execute(select(*columns).where(*where))).first()
            if row is None:  # a survivor learnt of only through the merge: it exists
                return None if current == customer_id else KnownCustomer(current)
            if row.survivor_id is None or row.survivor_id in seen:
                return KnownCustomer(current, tuple(row.tags) if self.keeps_tags else ())
            current = row.survivor_id
            seen.add(current)

    async def resolve(self, conn: AsyncConnection, tenant_id: str, customer_id: str) -> str | None:
        """The id of ``find``: whom ``customer_id`` counts for, None if unknown."""
        found = await self.find(conn, tenant_id, customer_id)
        return None if found is None else found.id

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
        """The customer and every record merged into it (their records are its own)."""
        rows = await conn.execute(
            select(self.table.c.customer_id).where(
                self.table.c.tenant_id == tenant_id, self.table.c.survivor_id == customer_id
            )
        )
        return [customer_id, *sorted(r[0] for r in rows)]

    def _key(self, tenant_id: str, customer_id: str) -> tuple[Any, Any]:
        return self.table.c.tenant_id == tenant_id, self.table.c.customer_id == customer_id


# --- the directory -------------------------------------------------------------------


class UnknownCustomer(NotFound):
    """No such customer in the caller's tenant (another tenant's is not one either)."""

    def __init__(self, customer_id: str) -> None:
        super().__init__(
            f"customer {customer_id} not found", customer_id=customer_id, field="customer_id"
        )


class ContactsUnavailable(DomainError):
    """The customer is not known here yet and contacts could not be asked: try again."""

    status_code = 503

    def __init__(self, customer_id: str) -> None:
        super().__init__(
            f"cannot confirm customer {customer_id} with contacts now; try again shortly",
            headers={"Retry-After": "2"},
            customer_id=customer_id,
        )


@dataclass
class CustomerDirectory:
    """Whether a customer exists in the tenant: the projection first, then contacts."""

    customers: KnownCustomers
    engine: AsyncEngine
    contacts_url: str | None = None
    # Made by the app and closed with it (``aclose``); tests put contacts' app behind it.
    client: httpx.AsyncClient | None = None
    # Set when the projection can be rebuilt: the generation serving now is looked up.
    generations: Callable[[int], KnownCustomers] | None = None
    timeout_seconds: float = CONTACTS_TIMEOUT_SECONDS

    async def find(self, tenant_id: str, customer_id: str, bearer: str | None) -> KnownCustomer:
        """The customer (a merged one's survivor); ``UnknownCustomer`` if the tenant has
        none, ``ContactsUnavailable`` if only contacts could tell and cannot now."""
        found = await self.known(tenant_id, customer_id, bearer)
        if found is None:
            raise UnknownCustomer(customer_id)
        return found

    async def known(
        self, tenant_id: str, customer_id: str, bearer: str | None
    ) -> KnownCustomer | None:
        """As ``find``, with None for a customer the tenant does not have."""
        customers = await self.serving()
        async with self.engine.connect() as conn:
            found = await customers.find(conn, tenant_id, customer_id)
        if found is not None:
            return found
        response = await self.ask_contacts("GET", f"customers/{customer_id}", bearer, customer_id)
        if response is None or response.status_code in (404, 422):
            return None  # 422: an id contacts could never have given
        if response.status_code != 200:
            log.warning("contacts answered %s for customer %s", response.status_code, customer_id)
            raise ContactsUnavailable(customer_id)
        body = response.json()
        found = KnownCustomer(str(body.get("id", customer_id)), tuple(body.get("tags", ())))
        async with self.engine.begin() as conn:
            await customers.learn(conn, tenant_id, found.id, tags=found.tags)
            if found.id != customer_id:  # contacts answered with the survivor
                await customers.learn(conn, tenant_id, customer_id, survivor_id=found.id)
        return found

    async def ask_contacts(
        self,
        method: str,
        path: str,
        bearer: str | None,
        customer_id: str,
        body: Mapping[str, Any] | None = None,
    ) -> httpx.Response | None:
        """Contacts' answer to ``/api/v1/<path>`` asked with the caller's own token; None
        when there is nobody to ask (no contacts configured, or no caller's token)."""
        if not self.contacts_url or not bearer:
            return None
        if self.client is None:
            self.client = httpx.AsyncClient()
        try:
            return await self.client.request(
                method,
                f"{self.contacts_url.rstrip('/')}/api/v1/{path}",
                json=body,
                headers={"Authorization": f"Bearer {bearer}"},
                timeout=self.timeout_seconds,
            )
        except httpx.HTTPError as exc:
            log.warning("contacts unreachable about customer %s: %s", customer_id, exc)
            raise ContactsUnavailable(customer_id) from None

    async def serving(self) -> KnownCustomers:
        """The projection's generation answering now (a rebuilt one once swapped in)."""
        if self.generations is not None:
            generation = await active_generation(self.engine, self.customers.name) or 1
            if generation != self.customers.generation:
                self.customers = self.generations(generation)
        return self.customers

    async def aclose(self) -> None:
        if self.client is not None:
            await self.client.aclose()
