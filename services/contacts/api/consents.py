"""Consents over HTTP: the customer's marketing consent per channel, and its source."""

from __future__ import annotations

from libs.events.catalog.contacts import ConsentChannel
from libs.platform.dependencies import Body
from libs.platform.routing import ServiceRouter
from libs.platform.types import Instant
from services.contacts.api.conventions import ConsentWrite, WrittenCustomer
from services.contacts.commands import ChangeConsent

router = ServiceRouter(prefix="/api/v1", tags=["contacts"])


class Consent(Body):
    granted: bool
    source: str
    at: Instant | None = None


@router.put("/customers/{customer_id}/consents/{channel}")
async def change_consent(
    channel: ConsentChannel, body: Consent, change: ConsentWrite
) -> WrittenCustomer:
    """Record the customer's marketing consent for a channel, and how it was given."""
    return await change.apply(
        ChangeConsent, {**body.model_dump(exclude_unset=True), "channel": channel}
    )
