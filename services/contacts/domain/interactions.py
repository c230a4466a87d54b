"""Touchpoints with a customer: logged once per ``interaction_id``, so a retried
request logs it once, and never in the future."""

from __future__ import annotations

from datetime import datetime

from libs.events.catalog import DomainEvent
from libs.events.catalog.contacts import InteractionLogged
from services.contacts.commands import LogInteraction
from services.contacts.domain.customer import Customer
from services.contacts.domain.guards import ensure_not_in_future


def log_interaction(
    command: LogInteraction, customer: Customer, now: datetime
) -> list[DomainEvent]:
    if command.interaction_id in customer.interaction_ids:
        return []
    occurred_at = ensure_not_in_future("occurred_at", command.occurred_at or now, now)
    return [
        InteractionLogged(
            customer_id=customer.id,
            interaction_id=command.interaction_id,
            channel=command.channel,
            direction=command.direction,
            summary=command.summary,
            by=command.by,
            occurred_at=occurred_at,
        )
    ]
