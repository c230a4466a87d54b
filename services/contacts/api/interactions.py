"""Interactions over HTTP: log a touchpoint with a customer, once per
``interaction_id`` (a retry answers 200 with the same ``Location``)."""

from __future__ import annotations

from urllib.parse import quote
from uuid import uuid4

from fastapi import status

from libs.events.catalog.contacts import (
    Direction,
    InteractionChannel,
)
from libs.platform.dependencies import Body
from libs.platform.routing import REPLAYED, ServiceRouter
from libs.platform.types import Instant
from services.contacts.api.conventions import InteractionWrite, WrittenCustomer, caller
from services.contacts.commands import LogInteraction

router = ServiceRouter(prefix="/api/v1", tags=["contacts"])


class Interaction(Body):
    # Chosen by the caller so that a retried request logs the interaction once.
    interaction_id: str | None = None
    channel: InteractionChannel
    direction: Direction
    summary: str = ""
    # Who talked to the customer; the caller when left out.
    by: str | None = None
    occurred_at: Instant | None = None


@router.post("/customers/{customer_id}/interactions", status_code=201, responses=REPLAYED)
async def log_interaction(body: Interaction, change: InteractionWrite) -> WrittenCustomer:
    """Log a touchpoint; 200 instead of 201 when its ``interaction_id`` was logged before."""
    data = body.model_dump(exclude_unset=True)
    data["interaction_id"] = body.interaction_id or str(uuid4())
    data["by"] = body.by or caller(change.principal)
    written = await change.apply(LogInteraction, data)
    if not change.changed:
        change.response.status_code = status.HTTP_200_OK
    # Percent-encoded: a header holds Latin-1 only, and an id may hold any character.
    interaction = quote(data["interaction_id"], safe="")
    change.response.headers["Location"] = (
        f"{router.prefix}/customers/{quote(change.customer_id, safe='')}/interactions/{interaction}"
    )
    return written
