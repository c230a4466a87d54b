"""A customer's history over HTTP: its events, and those of the duplicates merged
into it, oldest first."""

from __future__ import annotations

from typing import Any

from fastapi import Response

from libs.platform.dependencies import etag_for
from libs.platform.routing import ServiceRouter
from services.contacts.api.conventions import ContactsDep, CustomerId, Reader
from services.contacts.handlers import history as handlers

router = ServiceRouter(prefix="/api/v1", tags=["contacts"])


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
