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

from sqlalchemy.ext.asyncio import AsyncConnection

from libs.events import known_customers
from libs.events.catalog import DomainEvent
from libs.events.catalog.pipeline import catalog
from libs.events.known_customers import ContactsUnavailable
from libs.events.store import RecordedEvent
from libs.events.write_path import HandlerContext, Subject
from libs.platform.errors import Forbidden, Unprocessable
from services.pipeline.domain.errors import UnknownCustomer
from services.pipeline.read_model.known_customers import KnownCustomers

log = logging.getLogger(__name__)

SERVICE = "pipeline"
# Who a registration is about before contacts gives it an id (in a 503's extras).
NEW = "(new)"


@dataclass
class CustomerDirectory(known_customers.CustomerDirectory):
    """Which customers exist (``libs.events.known_customers``), and the pipeline's own
    questions: a customer named in a body, the records of one, a converted lead's."""

    customers: KnownCustomers

    async def register(
        self, tenant_id: str, profile: dict[str, Any], bearer: str | None
    ) -> tuple[str, bool]:
        """Register a customer with contacts, or find the one holding the email or phone:
        (its id, whether it already existed)."""
        response = await self.ask_contacts("POST", "customers", bearer, NEW, profile)
        if response is None:
            raise ContactsUnavailable(NEW)
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
            raise ContactsUnavailable(NEW)
        async with self.engine.begin() as conn:
            await self.customers.learn(conn, tenant_id, customer_id)
        return customer_id, existed

    async def require(
        self, tenant_id: str, customer_id: str, bearer: str | None, field: str = "customer_id"
    ) -> str:
        """The id a customer named in a request body counts as now; unknown is a 422."""
        found = await self.known(tenant_id, customer_id, bearer)
        if found is None:
            raise UnknownCustomer(customer_id, field)
        return found.id

    async def records(self, tenant_id: str, customer_id: str, bearer: str | None) -> list[str]:
        """The customer of a path and the records merged into it; unknown is a 404."""
        found = await self.find(tenant_id, customer_id, bearer)
        async with self.engine.connect() as conn:
            return await self.customers.records_of(conn, tenant_id, found.id)


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
