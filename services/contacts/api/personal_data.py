"""The person's rights over HTTP: an export of everything held about them (a data
access request), and their erasure (the right to erasure)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import (
    Depends,
    Response,
)

from libs.auth import Principal, require
from libs.platform.dependencies import IfMatch, etag_for
from libs.platform.routing import ServiceRouter
from services.contacts.api.conventions import (
    ContactsDep,
    CustomerId,
    Reader,
    WrittenCustomer,
    caller,
)
from services.contacts.handlers import personal_data as handlers

router = ServiceRouter(prefix="/api/v1", tags=["contacts"])


class Erased(WrittenCustomer):
    erased_ids: list[str]


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
        contacts, principal.tenant_id, customer_id, by=caller(principal), expected=expected
    )
    response.headers["ETag"] = etag_for(erasure.version)
    return Erased(id=erasure.customer_id, version=erasure.version, erased_ids=erasure.erased_ids)
