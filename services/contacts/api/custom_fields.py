"""Custom fields over HTTP: define one for the tenant's customers (or change whether it
is required and its choices), and list them."""

from __future__ import annotations

from typing import Annotated

from fastapi import (
    Depends,
    Path,
    Request,
    Response,
    status,
)
from pydantic import BaseModel

from libs.auth import Principal, require
from libs.events.catalog.contacts import CustomFieldType
from libs.platform.dependencies import Body, etag_for
from libs.platform.routing import ServiceRouter
from services.contacts.api.conventions import ContactsDep, Reader, to_command
from services.contacts.commands import DefineCustomField
from services.contacts.domain import CustomFieldDefinition
from services.contacts.handlers import custom_fields as handlers

router = ServiceRouter(prefix="/api/v1", tags=["contacts"])


class CustomField(Body):
    type: CustomFieldType
    required: bool = False
    choices: list[str] = []


class CustomFieldView(BaseModel):
    name: str
    type: CustomFieldType
    required: bool
    choices: list[str]


def _field_view(definition: CustomFieldDefinition) -> CustomFieldView:
    return CustomFieldView(
        name=definition.name,
        type=definition.type,
        required=definition.required,
        choices=list(definition.choices),
    )


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
    command = to_command(DefineCustomField, {**body.model_dump(), "name": name}, request)
    written = await handlers.define_custom_field(contacts, principal.tenant_id, command)
    if written.created:
        response.status_code = status.HTTP_201_CREATED
    response.headers["ETag"] = etag_for(written.version)
    return _field_view(written.definition)


@router.get("/custom-fields")
async def list_custom_fields(principal: Reader, contacts: ContactsDep) -> list[CustomFieldView]:
    return [_field_view(d) for d in await handlers.custom_fields(contacts, principal.tenant_id)]
