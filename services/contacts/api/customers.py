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
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any, TypeVar
from urllib.parse import quote
from uuid import uuid4

from fastapi import (
    Depends,
    Path,
    Query,
    Request,
    Response,
    status,
)
from pydantic import BaseModel, Field

from libs.auth import Principal, require
from libs.events.catalog.contacts import (
    ConsentChannel,
    CustomerKind,
    CustomFieldType,
    Direction,
    InteractionChannel,
)
from libs.platform.dependencies import Body, IfMatch, command_from, etag_for
from libs.platform.routing import REPLAYED, ServiceRouter
from libs.platform.types import Instant, UtcInstant
from services.contacts.commands import (
    AttributeInput,
    ChangeConsent,
    ChangeOwner,
    ChangeProfile,
    Command,
    CustomerCommand,
    DefineCustomField,
    LogInteraction,
    MergeCustomer,
    RecordReferral,
    RegisterCustomer,
    RemoveKeyContact,
    SetKeyContact,
    TagCustomer,
    UntagCustomer,
)
from services.contacts.domain import CustomFieldDefinition
from services.contacts.handlers import customers as handlers
from services.contacts.handlers.customers import Contacts, Written
from services.contacts.read_model import customer_search

router = ServiceRouter(prefix="/api/v1", tags=["contacts"])

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


# --- request and response bodies -----------------------------------------------------


class CustomerRegistration(Body):
    kind: CustomerKind
    name: str
    email: str | None = None
    phone: str | None = None
    birthday: date | None = None
    owner_id: str | None = None
    tags: list[str] = []
    attributes: dict[str, AttributeInput] = {}
    company_id: str | None = None
    # Only for migrations: when the customer really joined.
    registered_at: Instant | None = None
    # Set after a 409 when a person has judged that these really are two customers.
    register_anyway: bool = False


class CustomerChanges(Body):
    """JSON merge patch: a field left out is unchanged, a field sent as null is removed."""

    name: str | None = None
    email: str | None = None
    phone: str | None = None
    birthday: date | None = None
    company_id: str | None = None
    attributes: dict[str, AttributeInput] = {}


class Tags(Body):
    tags: list[str] = Field(min_length=1)


class Owner(Body):
    owner_id: str | None


class KeyContact(Body):
    contact_id: str


class Referral(Body):
    referrer_id: str


class Interaction(Body):
    # Chosen by the caller so that a retried request logs the interaction once.
    interaction_id: str | None = None
    channel: InteractionChannel
    direction: Direction
    summary: str = ""
    # Who talked to the customer; the caller when left out.
    by: str | None = None
    occurred_at: Instant | None = None


class Merge(Body):
    duplicate_id: str


class Consent(Body):
    granted: bool
    source: str
    at: Instant | None = None


class CustomField(Body):
    type: CustomFieldType
    required: bool = False
    choices: list[str] = []


class WrittenCustomer(BaseModel):
    id: str
    version: int


class Erased(WrittenCustomer):
    erased_ids: list[str]


class CustomFieldView(BaseModel):
    name: str
    type: CustomFieldType
    required: bool
    choices: list[str]


class CustomerPage(BaseModel):
    items: list[dict[str, Any]]
    next_cursor: str | None


UtcQueryTime = UtcInstant | None


# --- helpers ---------------------------------------------------------------------------


def _command(model: type[C], data: Mapping[str, Any], request: Request, **server_set: Any) -> C:
    """``command_from`` with the default phone region the command's validators read (a
    NUL character anywhere in the body was refused before: ``libs.platform.routing``)."""
    context = {"phone_region": wired_contacts(request).phone_region}
    return command_from(model, data, context=context, **server_set)


def _written(response: Response, written: Written) -> WrittenCustomer:
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
        return _command(model, data, self.request, customer_id=self.customer_id)

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
        return _written(self.response, written)


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


def _caller(principal: Principal) -> str:
    # Commands keep ids to 64 characters; an identity provider's subject may be longer.
    return principal.subject[:64]


def _field_view(definition: CustomFieldDefinition) -> CustomFieldView:
    return CustomFieldView(
        name=definition.name,
        type=definition.type,
        required=definition.required,
        choices=list(definition.choices),
    )


# --- customers ---------------------------------------------------------------------------


@router.post("/customers", status_code=status.HTTP_201_CREATED)
async def register_customer(
    body: CustomerRegistration,
    request: Request,
    response: Response,
    principal: Writer,
    contacts: ContactsDep,
) -> WrittenCustomer:
    """Register a person or a company; 409 with ``existing_id`` for a duplicate."""
    command = _command(
        RegisterCustomer,
        body.model_dump(exclude_unset=True, exclude={"register_anyway"}),
        request,
        customer_id=str(uuid4()),
        tenant_id=principal.tenant_id,
    )
    written = await handlers.register_customer(
        contacts, command, register_anyway=body.register_anyway
    )
    response.headers["Location"] = f"{router.prefix}/customers/{written.customer_id}"
    return _written(response, written)


@router.get("/customers")
async def list_customers(
    principal: Reader,
    contacts: ContactsDep,
    q: Annotated[str | None, Query(max_length=200, pattern=r"^[^\x00]*$")] = None,
    tag: Annotated[list[str] | None, Query(max_length=10)] = None,
    owner: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    kind: CustomerKind | None = None,
    created_from: Annotated[UtcQueryTime, Query()] = None,
    created_to: Annotated[UtcQueryTime, Query()] = None,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
    limit: Annotated[int, Query(ge=1, le=customer_search.MAX_PAGE)] = 50,
) -> CustomerPage:
    """Search and filter the tenant's customers, newest registration first.

    ``q`` matches name (also by pinyin, full or initials), email and phone;
    ``tag`` may be repeated (all must match); ``created_from`` is inclusive and
    ``created_to`` exclusive, on when the customer registered. Pass
    ``next_cursor`` back as ``cursor`` for the next page.
    """
    tags = tuple(" ".join(t.split()).lower() for t in tag or [])
    query = customer_search.CustomerQuery(
        q=q,
        tags=tags,
        owner_id=owner,
        kind=kind,
        registered_from=created_from,
        registered_before=created_to,
    )
    async with contacts.engine.connect() as conn:
        page = await customer_search.search(
            conn, principal.tenant_id, query, cursor=cursor, limit=limit
        )
    return CustomerPage(items=page.items, next_cursor=page.next_cursor)


@router.get("/customers/{customer_id}")
async def get_customer(
    customer_id: CustomerId, response: Response, principal: Reader, contacts: ContactsDep
) -> dict[str, Any]:
    found = await handlers.customer_profile(contacts, principal.tenant_id, customer_id)
    response.headers["ETag"] = etag_for(found.version)
    if found.customer_id != customer_id:
        response.headers["Content-Location"] = f"{router.prefix}/customers/{found.customer_id}"
    return found.profile


@router.patch("/customers/{customer_id}")
async def change_customer(body: CustomerChanges, change: CustomerWrite) -> WrittenCustomer:
    return await change.apply(ChangeProfile, body.model_dump(exclude_unset=True))


@router.post("/customers/{customer_id}/tags")
async def tag_customer(body: Tags, change: CustomerWrite) -> WrittenCustomer:
    return await change.apply(TagCustomer, body.model_dump())


@router.delete("/customers/{customer_id}/tags/{tag}")
async def untag_customer(
    tag: Annotated[str, Path(max_length=64, pattern=r"^[^\x00]+$")], change: CustomerWrite
) -> WrittenCustomer:
    return await change.apply(UntagCustomer, {"tags": [tag]})


@router.put("/customers/{customer_id}/owner")
async def change_owner(body: Owner, change: CustomerWrite) -> WrittenCustomer:
    """Hand the customer to another owner; ``null`` returns it to the unassigned pool."""
    return await change.apply(ChangeOwner, body.model_dump())


@router.put("/customers/{customer_id}/key-contacts/{role}")
async def set_key_contact(role: Slug, body: KeyContact, change: CustomerWrite) -> WrittenCustomer:
    """Make a person the company's key contact for ``role`` (e.g. ``purchasing``)."""
    return await change.apply(SetKeyContact, {**body.model_dump(), "role": role})


@router.delete("/customers/{customer_id}/key-contacts/{role}")
async def remove_key_contact(role: Slug, change: CustomerWrite) -> WrittenCustomer:
    return await change.apply(RemoveKeyContact, {"role": role})


@router.put("/customers/{customer_id}/referrer")
async def record_referral(body: Referral, change: CustomerWrite) -> WrittenCustomer:
    """Record who referred the customer, once: the same referrer again is a 200 that
    changes nothing, another one is 409; the customer itself or a customer it referred
    is 422; a referrer the tenant does not have is 404 (decision 0040)."""
    return await change.apply(RecordReferral, body.model_dump())


@router.post("/customers/{customer_id}/interactions", status_code=201, responses=REPLAYED)
async def log_interaction(body: Interaction, change: InteractionWrite) -> WrittenCustomer:
    """Log a touchpoint; 200 instead of 201 when its ``interaction_id`` was logged before."""
    data = body.model_dump(exclude_unset=True)
    data["interaction_id"] = body.interaction_id or str(uuid4())
    data["by"] = body.by or _caller(change.principal)
    written = await change.apply(LogInteraction, data)
    if not change.changed:
        change.response.status_code = status.HTTP_200_OK
    # Percent-encoded: a header holds Latin-1 only, and an id may hold any character.
    interaction = quote(data["interaction_id"], safe="")
    change.response.headers["Location"] = (
        f"{router.prefix}/customers/{quote(change.customer_id, safe='')}/interactions/{interaction}"
    )
    return written


@router.post("/customers/{customer_id}/merge")
async def merge_customers(body: Merge, change: MergeWrite) -> WrittenCustomer:
    """``customer_id`` survives and absorbs ``duplicate_id``; If-Match is the survivor's."""
    command = change.command(MergeCustomer, body.model_dump())
    written = await handlers.merge_customers(
        change.contacts, change.principal.tenant_id, command, expected=change.expected
    )
    return change.answer(written)


@router.put("/customers/{customer_id}/consents/{channel}")
async def change_consent(
    channel: ConsentChannel, body: Consent, change: ConsentWrite
) -> WrittenCustomer:
    """Record the customer's marketing consent for a channel, and how it was given."""
    return await change.apply(
        ChangeConsent, {**body.model_dump(exclude_unset=True), "channel": channel}
    )


@router.get("/customers/{customer_id}/history")
async def customer_history(
    customer_id: CustomerId, response: Response, principal: Reader, contacts: ContactsDep
) -> dict[str, Any]:
    """The customer's events oldest first, those of duplicates merged into it included."""
    history = await handlers.customer_history(contacts, principal.tenant_id, customer_id)
    response.headers["ETag"] = etag_for(history.version)
    return {
        "customer_id": history.customer_id,
        "events": [handlers.event_view(e) for e in history.events],
    }


@router.get("/customers/{customer_id}/export")
async def export_customer(
    customer_id: CustomerId, response: Response, principal: Reader, contacts: ContactsDep
) -> dict[str, Any]:
    """Everything held about the person, as one JSON document (a data access request)."""
    export = await handlers.export_customer(contacts, principal.tenant_id, customer_id)
    customer = export["customer"] or {}
    response.headers["Content-Disposition"] = (
        f'attachment; filename="customer-{customer.get("id", customer_id)}.json"'
    )
    return export


@router.delete("/customers/{customer_id}/personal-data")
async def erase_personal_data(
    customer_id: CustomerId,
    response: Response,
    principal: Annotated[Principal, Depends(require("customers:erase"))],
    contacts: ContactsDep,
    expected: IfMatch,
) -> Erased:
    """Forget the person (right to erasure): their records here, merged ones included,
    and the personal fields of their history; a PersonalDataErased event tells every
    other service to do the same. Cannot be undone."""
    erasure = await handlers.erase_personal_data(
        contacts, principal.tenant_id, customer_id, by=_caller(principal), expected=expected
    )
    response.headers["ETag"] = etag_for(erasure.version)
    return Erased(id=erasure.customer_id, version=erasure.version, erased_ids=erasure.erased_ids)


# Imports (a job per file) are in imports_api.py.


# --- custom fields ---------------------------------------------------------------------


@router.put(
    "/custom-fields/{name}",
    responses={
        201: {"description": "The field was defined by this request", "model": CustomFieldView}
    },
)
async def define_custom_field(
    name: Annotated[str, Path(max_length=63, pattern=r"^[^\x00]+$")],
    body: CustomField,
    request: Request,
    response: Response,
    principal: Annotated[Principal, Depends(require("custom_fields:write"))],
    contacts: ContactsDep,
) -> CustomFieldView:
    """Define a custom field for the tenant's customers, or change whether it is
    required and its choices (its type is fixed once defined: 409)."""
    command = _command(DefineCustomField, {**body.model_dump(), "name": name}, request)
    written = await handlers.define_custom_field(contacts, principal.tenant_id, command)
    if written.created:
        response.status_code = status.HTTP_201_CREATED
    response.headers["ETag"] = etag_for(written.version)
    return _field_view(written.definition)


@router.get("/custom-fields")
async def list_custom_fields(principal: Reader, contacts: ContactsDep) -> list[CustomFieldView]:
    return [_field_view(d) for d in await handlers.custom_fields(contacts, principal.tenant_id)]
