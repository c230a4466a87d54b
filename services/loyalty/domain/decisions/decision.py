"""A decision in progress: the events decided so far, applied to a working copy of the
ledger, so later steps (a tier change after an order, owed points recovered from a new
lot) see the earlier ones."""

from __future__ import annotations

import copy

from libs.events.catalog import DomainEvent
from services.loyalty.domain.ledger import Ledger, evolve


class Decision:
    """The events decided so far, applied to a working copy of the ledger."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = copy.deepcopy(ledger)
        self.events: list[DomainEvent] = []

    def emit(self, event: DomainEvent) -> None:
        self.events.append(event)
        self.ledger = evolve(self.ledger, event)


def lot_id(ledger: Ledger, kind: str, key: str) -> str:
    # Customer-qualified: lots of two merged customers never share an id.
    return f"{ledger.customer_id}/{kind}:{key}"
