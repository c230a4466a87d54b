"""The contacts HTTP API under /api/v1: parse, authorise, call the handler, answer.

Routers stay thin: request models describe the JSON (and the OpenAPI document);
the commands in ``commands.py`` normalise it (phones need the configured region,
which only a validation context can carry); handlers do the work. Domain errors
become their status in the app factory, so there is no try/except per error here.

Conventions every endpoint keeps:

* the tenant comes from the token only; another tenant's customer is a 404;
* ``ETag: "<version>"`` on every answer about one customer; ``If-Match`` on a
  write makes it conditional (412 when the customer is at another version);
* a merged duplicate's id answers GET with the survivor (200, the survivor's id
  in the body and ``Content-Location``); writes to it are 409 naming the survivor.

Here: the dependencies every router takes (the wired handlers, the caller's
permission, one customer's change with its If-Match and ETag) and the answer to a
write. Each concern has its router: ``customers``, ``interactions``, ``merges``,
``consents``, ``history``, ``personal_data``, ``custom_fields`` (and ``imports``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import (
    Depends,
    Path,
    Request,
    Response,
)
from pydantic import BaseModel

from libs.auth import Principal, require
from libs.platform.dependencies import IfMatch, command_from, etag_for
from services.contacts.commands import (
    Command,
    CustomerCommand,
)
from services.contacts.handlers import customers as handlers
from services.contacts.handlers.customers import Contacts, Written

C = TypeVar("C", bound=Command)


# Ids travel in paths and SQL: refuse anything that is not plainly an id (and NUL,
# which PostgreSQL cannot store) with a 422 before it reaches either.
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"
CustomerId = Annotated[str, Path(pattern=ID_PATTERN, description="the customer's id")]
Slug = Annotated[str, Path(pattern=r"^[A-Za-z0-9_]{1,63}$")]


def wired_contacts(request: Request) -> Contacts:
    contacts: Contacts = request.app.state.contacts
    return contacts


async def contacts_of(request: Request) -> Contacts:
    # async: FastAPI runs a plain def dependency in its thread pool, a hop per request.
    return wired_contacts(request)


ContactsDep = Annotated[Contacts, Depends(contacts_of)]
Reader = Annotated[Principal, Depends(require("customers:read"))]
Writer = Annotated[Principal, Depends(require("customers:write"))]


class WrittenCustomer(BaseModel):
    id: str
    version: int


def to_command(model: type[C], data: Mapping[str, Any], request: Request, **server_set: Any) -> C:
    """``command_from`` with the default phone region the command's validators read (a
    NUL character anywhere in the body was refused before: ``libs.platform.routing``)."""
    context = {"phone_region": wired_contacts(request).phone_region}
    return command_from(model, data, context=context, **server_set)


def written_customer(response: Response, written: Written) -> WrittenCustomer:
    response.headers["ETag"] = etag_for(written.version)
    return WrittenCustomer(id=written.customer_id, version=written.version)


@dataclass
class CustomerChange:
    """What every write to one customer shares: the customer, the caller, the
    If-Match, and the answer's ETag. Each endpoint keeps only what differs."""

    customer_id: str
    principal: Principal
    contacts: Contacts
    expected: int | None
    request: Request
    response: Response
    changed: bool = False

    def command(self, model: type[C], data: Mapping[str, Any]) -> C:
        return to_command(model, data, self.request, customer_id=self.customer_id)

    async def apply(self, model: type[CustomerCommand], data: Mapping[str, Any]) -> WrittenCustomer:
        """The command on this customer, through the one-customer handler."""
        written = await handlers.change_customer(
            self.contacts,
            self.principal.tenant_id,
            self.command(model, data),
            expected=self.expected,
        )
        return self.answer(written)

    def answer(self, written: Written) -> WrittenCustomer:
        self.changed = written.changed
        return written_customer(self.response, written)


def _change_by(permission: str) -> Any:
    """A dependency giving a ``CustomerChange`` to callers holding ``permission``."""

    async def change(
        customer_id: CustomerId,
        request: Request,
        response: Response,
        contacts: ContactsDep,
        expected: IfMatch,
        # A default, not an annotation: annotations are strings here, and a string
        # cannot see ``permission``.
        principal: Principal = Depends(require(permission)),  # noqa: B008
    ) -> CustomerChange:
        return CustomerChange(customer_id, principal, contacts, expected, request, response)

    return Depends(change)


CustomerWrite = Annotated[CustomerChange, _change_by("customers:write")]
InteractionWrite = Annotated[CustomerChange, _change_by("interactions:write")]
ConsentWrite = Annotated[CustomerChange, _change_by("consent:write")]
MergeWrite = Annotated[CustomerChange, _change_by("customers:merge")]


def caller(principal: Principal) -> str:
    # Commands keep ids to 64 characters; an identity provider's subject may be longer.
    return principal.subject[:64]
