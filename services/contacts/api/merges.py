"""Merges over HTTP: the customer in the path survives and absorbs a duplicate."""

from __future__ import annotations

from libs.platform.dependencies import Body
from libs.platform.routing import ServiceRouter
from services.contacts.api.conventions import MergeWrite, WrittenCustomer
from services.contacts.commands import MergeCustomer
from services.contacts.handlers import merges as handlers

router = ServiceRouter(prefix="/api/v1", tags=["contacts"])


class Merge(Body):
    duplicate_id: str


@router.post("/customers/{customer_id}/merge")
async def merge_customers(body: Merge, change: MergeWrite) -> WrittenCustomer:
    """``customer_id`` survives and absorbs ``duplicate_id``; If-Match is the survivor's."""
    command = change.command(MergeCustomer, body.model_dump())
    written = await handlers.merge_customers(
        change.contacts, change.principal.tenant_id, command, expected=change.expected
    )
    return change.answer(written)
