"""Marketing consent per channel: the latest decision wins, an older one arriving
late changes nothing."""

from __future__ import annotations

from datetime import datetime

from libs.events.catalog import DomainEvent
from libs.events.catalog.contacts import ConsentChanged
from services.contacts.commands import ChangeConsent
from services.contacts.domain.customer import Customer
from services.contacts.domain.guards import ensure_not_in_future


def change_consent(command: ChangeConsent, customer: Customer, now: datetime) -> list[DomainEvent]:
    at = ensure_not_in_future("at", command.at or now, now)
    current = customer.consents.get(command.channel)
    if current is not None and (current.granted == command.granted or at < current.at):
        return []
    return [ConsentChanged(customer_id=customer.id, channel=command.channel,
                           granted=command.granted, source=command.source, at=at)]
