"""Customers over HTTP: register one, list and search them, read one (a merged
duplicate's id answers with its survivor), and the writes to its profile, tags,
owner, key contacts and referrer."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any
from uuid import uuid4

from fastapi import (
    Path,
    Query,
    Request,
    Response,
    status,
)
from pydantic import BaseModel, Field

from libs.events.catalog.contacts import CustomerKind
from libs.phones import international
from libs.platform.dependencies import Body, etag_for
from libs.platform.routing import ServiceRouter
from libs.platform.types import PERSON_PATTERN, Instant, UtcInstant
from services.contacts.api.conventions import (
    ContactsDep,
    CustomerId,
    CustomerWrite,
    Reader,
    Slug,
    Writer,
    WrittenCustomer,
    to_command,
    written_customer,
)
from services.contacts.commands import (
    AttributeInput,
    ChangeOwner,
    ChangeProfile,
    RecordReferral,
    RegisterCustomer,
    RemoveKeyContact,
    SetKeyContact,
    TagCustomer,
    UntagCustomer,
)
from services.contacts.handlers import customers as handlers
from services.contacts.read_model import customer_search

router = ServiceRouter(prefix="/api/v1", tags=["contacts"])


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


class CustomerPage(BaseModel):
    items: list[dict[str, Any]]
    next_cursor: str | None


UtcQueryTime = UtcInstant | None


@router.post("/customers", status_code=status.HTTP_201_CREATED)
async def register_customer(
    body: CustomerRegistration,
    request: Request,
    response: Response,
    principal: Writer,
    contacts: ContactsDep,
) -> WrittenCustomer:
    """Register a person or a company; 409 with ``existing_id`` for a duplicate."""
    command = to_command(
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
    return written_customer(response, written)


@router.get("/customers")
async def list_customers(
    principal: Reader,
    contacts: ContactsDep,
    q: Annotated[str | None, Query(max_length=200, pattern=r"^[^\x00]*$")] = None,
    tag: Annotated[list[str] | None, Query(max_length=10)] = None,
    owner: Annotated[str | None, Query(pattern=PERSON_PATTERN)] = None,
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
    return CustomerPage(items=[readable(item) for item in page.items], next_cursor=page.next_cursor)


def readable(customer: dict[str, Any]) -> dict[str, Any]:
    """``customer`` with its phone also written out (``phone_international``)."""
    return {**customer, "phone_international": international(customer.get("phone"))}


@router.get("/customers/{customer_id}")
async def get_customer(
    customer_id: CustomerId, response: Response, principal: Reader, contacts: ContactsDep
) -> dict[str, Any]:
    found = await handlers.customer_profile(contacts, principal.tenant_id, customer_id)
    response.headers["ETag"] = etag_for(found.version)
    if found.customer_id != customer_id:
        response.headers["Content-Location"] = f"{router.prefix}/customers/{found.customer_id}"
    return readable(found.profile)


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
