"""The pipeline handlers: load, decide, append, in one transaction each.

Every command reads its aggregate's stream in the transaction, folds it, asks the
pure domain for new events with ``now`` from the injected clock, then appends them
with the version read, updates the read model and enqueues the outbox, all or
nothing. Without If-Match a lost race is decided again on the fresher state; with
it, the caller decided on a version it saw, so another version is a 412.

The customer a command names must exist in the tenant: ``CustomerDirectory``
looks in the table the contacts topic fills and, for a customer registered a
moment ago that has not arrived yet, asks contacts itself (decision 0016).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import httpx
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from libs.events.catalog import DomainEvent
from libs.events.catalog.pipeline import catalog
from libs.events.store import RecordedEvent
from libs.events.write_path import HandlerContext, Subject
from libs.platform.errors import (
    DomainError,
    Forbidden,
    NotFound,
    Unprocessable,
)
from services.pipeline.domain.errors import UnknownCustomer
from services.pipeline.read_model.known_customers import KnownCustomers

log = logging.getLogger(__name__)

SERVICE = "pipeline"
SOURCE = "/crm/pipeline"
CONTACTS_TIMEOUT_SECONDS = 5.0


class CustomerNotFound(NotFound):
    def __init__(self, customer_id: str) -> None:
        super().__init__(f"no customer {customer_id}", customer_id=customer_id)


class ContactsUnavailable(DomainError):
    """The customer is not known here yet and contacts could not be asked."""

    status_code = 503

    def __init__(self, customer_id: str) -> None:
        super().__init__(
            f"cannot check customer {customer_id} with contacts now; try again shortly",
            headers={"Retry-After": "2"},
            customer_id=customer_id,
        )


@dataclass
class CustomerDirectory:
    """Which customers exist: the contacts topic's copy, else contacts over HTTP."""

    customers: KnownCustomers
    engine: AsyncEngine
    contacts_url: str | None = None
    client: httpx.AsyncClient | None = None

    async def find(self, tenant_id: str, customer_id: str, bearer: str | None) -> str | None:
        """The id ``customer_id`` counts as now (a merged one's survivor), None if the
        tenant has no such customer."""
        async with self.engine.connect() as conn:
            found = await self.customers.resolve(conn, tenant_id, customer_id)
        if found is not None:
            return found
        if not self.contacts_url or self.client is None or not bearer:
            return None
        try:
            # The caller's own token: contacts answers for the caller's tenant only.
            response = await self.client.get(
                f"{self.contacts_url.rstrip('/')}/api/v1/customers/{customer_id}",
                headers={"Authorization": f"Bearer {bearer}"},
                timeout=CONTACTS_TIMEOUT_SECONDS,
            )
        except httpx.HTTPError:
            log.warning("contacts unreachable while checking customer %s", customer_id)
            raise ContactsUnavailable(customer_id) from None
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            log.warning("contacts answered %s for customer %s", response.status_code, customer_id)
            raise ContactsUnavailable(customer_id)
        survivor = str(response.json()["id"])
        async with self.engine.begin() as conn:
            await self.customers.learn(conn, tenant_id, survivor)
            if survivor != customer_id:
                await self.customers.learn(conn, tenant_id, customer_id, survivor_id=survivor)
        return survivor

    async def register(
        self, tenant_id: str, profile: dict[str, Any], bearer: str | None
    ) -> tuple[str, bool]:
        """Register a customer with contacts, or find the one holding the email or phone:
        (its id, whether it already existed)."""
        if not self.contacts_url or self.client is None or not bearer:
            raise ContactsUnavailable("(new)")
        try:
            response = await self.client.post(
                f"{self.contacts_url.rstrip('/')}/api/v1/customers",
                json=profile,
                headers={"Authorization": f"Bearer {bearer}"},
                timeout=CONTACTS_TIMEOUT_SECONDS,
            )
        except httpx.HTTPError:
            log.warning("contacts unreachable while registering a converted lead")
            raise ContactsUnavailable("(new)") from None
        body = (
            response.json()
            if response.headers.get("content-type", "").startswith(
                ("application/json", "application/problem+json")
            )
            else {}
        )
        if response.status_code == 201:
            customer_id, existed = str(body["id"]), False
        elif response.status_code == 409 and "existing_id" in body:
            customer_id, existed = str(body["existing_id"]), True
        elif response.status_code == 422 and isinstance(body.get("errors"), list):
            issue = body["errors"][0]
            raise Unprocessable(str(issue.get("field", "lead")), str(issue.get("reason", "")))
        elif response.status_code == 403:
            raise Forbidden("converting a lead registers a customer: customers:write needed")
        else:
            log.warning("contacts answered %s to a registration", response.status_code)
            raise ContactsUnavailable("(new)")
        async with self.engine.begin() as conn:
            await self.customers.learn(conn, tenant_id, customer_id)
        return customer_id, existed

    async def require(
        self, tenant_id: str, customer_id: str, bearer: str | None, field: str = "customer_id"
    ) -> str:
        """As ``find``, for a customer named in a request body: unknown is a 422."""
        found = await self.find(tenant_id, customer_id, bearer)
        if found is None:
            raise UnknownCustomer(customer_id, field)
        return found

    async def records(self, tenant_id: str, customer_id: str, bearer: str | None) -> list[str]:
        """The customer of a path and the records merged into it; unknown is a 404."""
        found = await self.find(tenant_id, customer_id, bearer)
        if found is None:
            raise CustomerNotFound(customer_id)
        async with self.engine.connect() as conn:
            return await self.customers.records_of(conn, tenant_id, found)


@dataclass
class Pipeline(HandlerContext):
    """What the handlers need, wired once by ``app.create_app`` (tests wire their own)."""

    service: ClassVar[str] = SERVICE

    directory: CustomerDirectory

    def subject(self, stream_id: str) -> Subject:
        return Subject(stream_id, {"id": stream_id})


@dataclass(frozen=True, slots=True)
class Written:
    """The outcome of a command: the aggregate, its version, and whether it is new."""

    id: str
    version: int
    created: bool = False


# --- shared steps ----------------------------------------------------------------------


def decoded(recorded: Sequence[RecordedEvent]) -> list[DomainEvent]:
    return [catalog.decode(e.type, e.data) for e in recorded]


async def read_events(
    pipeline: Pipeline, conn: AsyncConnection, tenant_id: str, stream_id: str
) -> list[DomainEvent]:
    return decoded(await pipeline.store.read_stream(tenant_id, stream_id, conn=conn))


# --- orders ----------------------------------------------------------------------------
