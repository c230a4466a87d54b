"""The SLA breach scheduler, inside the service: no cron job anywhere else.

Every round (one every ``SLA_CHECK_SECONDS``) it asks the read model for tickets
whose ``next_due_at`` has passed on the injected clock and records their breaches.
Exactly once holds whatever happens around it: a breach is an event appended to the ticket's stream
at the version read, the domain refuses a target already breached, so a second
attempt (another replica, a retry after a restart) conflicts or finds it done and
records nothing. After a restart it simply finds the tickets still due.
"""

from __future__ import annotations

import asyncio
import logging

from libs.events.catalog.tickets import SlaBreached
from services.tickets.handlers import Tickets, ticket_metrics
from services.tickets.handlers.tickets import look_after
from services.tickets.read_model import ticket_list

log = logging.getLogger(__name__)

# Batches per tick at most, so one tick always ends (the next one carries on).
MAX_ROUNDS = 20
# The open-tickets gauge counts every open ticket: not on every tick.
GAUGE_EVERY_SECONDS = 15.0


class BreachScheduler:
    def __init__(self, tickets: Tickets, *, batch: int = 500) -> None:
        self.tickets = tickets
        self.batch = batch
        self._counted_at = float("-inf")

    async def tick(self) -> int:
        """Record every breach and escalation due by now; the number of breaches."""
        recorded = 0
        for _ in range(MAX_ROUNDS):
            due = await ticket_list.due(self.tickets.engine, self.tickets.clock(), self.batch)
            for ticket in due:
                try:
                    done = await look_after(self.tickets, ticket.tenant_id, ticket.ticket_id)
                except Exception:
                    # One ticket that cannot be looked after must not hold up the others.
                    log.exception("SLA scheduler: ticket %s failed", ticket.ticket_id)
                    continue
                recorded += sum(isinstance(e, SlaBreached) for e in done)
            # A full batch may hide more: go on until the due list is drained.
            if len(due) < self.batch:
                break
        return recorded

    async def count_open(self) -> None:
        ticket_metrics.set_open(await ticket_list.open_by_priority(self.tickets.engine))

    async def round(self) -> None:
        await self.tick()
        now = asyncio.get_running_loop().time()
        if now - self._counted_at >= GAUGE_EVERY_SECONDS:
            await self.count_open()
            self._counted_at = now
