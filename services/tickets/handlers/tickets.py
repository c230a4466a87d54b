"""The ticket use cases: open, change, record breaches and escalations.

Each loads the ticket's stream, decides with the pure domain at ``now`` from the
injected clock, and appends at the version read together with the ticket's read-model
row (its ``next_due_at`` recomputed) and the outbox, in one transaction (see ``unit``).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from libs.events.catalog import DomainEvent
from libs.events.catalog.tickets import EscalationRule, Priority, TicketOpened, TicketReplied
from libs.events.known_customers import KnownCustomer
from libs.events.store import RecordedEvent
from libs.events.write_path import new_events
from libs.platform.errors import DomainError, NotFound
from services.tickets.commands import ChangePriority, OpenTicket, RecordBreach, TicketCommand
from services.tickets.domain.calendar import STANDARD, BusinessCalendar
from services.tickets.domain.dispatch import dispatch, matching_rule
from services.tickets.domain.escalation import escalate, raise_priority
from services.tickets.domain.sla import TARGETS
from services.tickets.domain.ticket import (
    AppliedSla,
    NoBreach,
    Ticket,
    decide,
    decide_open,
    existing,
    fold,
)
from services.tickets.handlers import (
    Tickets,
    ticket_metrics,
    timed,
)
from services.tickets.handlers.policies import (
    applied_sla,
    calendar_at,
    dispatch_rules,
    escalation_rules,
)
from services.tickets.read_model import ticket_list

log = logging.getLogger(__name__)

# Decides a ticket's new events: (ticket, now, its calendar) -> events.
Decider = Callable[[Ticket, datetime, BusinessCalendar], Awaitable[list[DomainEvent]]]


@dataclass(frozen=True, slots=True)
class Loaded:
    ticket: Ticket
    subject: str
    channel: str
    description: str
    requester: dict[str, str | None]
    replies: list[dict[str, object]]
    history: list[RecordedEvent]


async def load(
    tickets: Tickets, tenant_id: str, ticket_id: str, conn: AsyncConnection | None = None
) -> Loaded:
    recorded = await tickets.store.read_stream(tenant_id, ticket_id, conn=conn)
    history = timed(recorded)
    ticket = existing(fold(history), ticket_id)
    opened = history[0][0]
    assert isinstance(opened, TicketOpened)
    replies = [
        {
            "id": e.reply_id,
            "public": e.public,
            "body": e.body,
            "by": e.by,
            "at": at,
            "first_response": e.first_response,
        }
        for e, at in history
        if isinstance(e, TicketReplied)
    ]
    return Loaded(
        ticket=ticket,
        subject=opened.subject,
        channel=opened.channel,
        description=opened.description,
        requester={
            "name": opened.requester_name,
            "email": opened.requester_email,
            "phone": opened.requester_phone,
        },
        replies=replies,
        history=recorded,
    )


async def calendar_of(tickets: Tickets, tenant_id: str, ticket: Ticket) -> BusinessCalendar:
    if ticket.sla is None:
        return STANDARD
    return await calendar_at(tickets, tenant_id, ticket.sla.calendar, ticket.sla.calendar_version)


async def open_ticket(
    tickets: Tickets, tenant_id: str, by: str, command: OpenTicket, bearer: str | None
) -> Ticket:
    customer = await tickets.directory.find(tenant_id, command.customer_id, bearer)
    if customer.id != command.customer_id:  # a merged duplicate: the survivor's ticket
        command = command.model_copy(update={"customer_id": customer.id})
    sla = await applied_sla(tickets, tenant_id, command.sla_policy, command.priority, customer)
    events = decide_open(command, str(uuid.uuid4()), by, sla)
    events += await dispatched(tickets, tenant_id, events, customer)
    now = tickets.clock()
    ticket = existing(fold((e, now) for e in events), "new")
    calendar = await calendar_of(tickets, tenant_id, ticket)
    rules = await escalation_rules(tickets, tenant_id)
    async with tickets.engine.begin() as conn:
        await tickets.store.append(
            tenant_id, ticket.id, 0, new_events(events, command.customer_id, now), conn=conn
        )
        await ticket_list.save(
            conn,
            tenant_id,
            ticket,
            calendar,
            now,
            rules,
            subject=await listed_subject(tickets, conn, tenant_id, command),
            channel=command.channel,
        )
    tickets.appended(len(events))
    ticket_metrics.opened(ticket)
    return ticket


async def listed_subject(
    tickets: Tickets, conn: AsyncConnection, tenant_id: str, command: OpenTicket
) -> str:
    """The subject as the list shows it: none for a customer whose personal data was
    erased (their key is gone, so the events hold none either)."""
    vault = tickets.store.vault
    if vault is None:
        return command.subject
    customer = (tenant_id, command.customer_id)
    keys = await vault.keys(conn, [customer])
    return "" if customer in keys and keys[customer] is None else command.subject


async def change(
    tickets: Tickets,
    tenant_id: str,
    ticket_id: str,
    decider: Decider,
    *,
    expected: int | None = None,
) -> tuple[Ticket, list[DomainEvent]]:
    """New events on an existing ticket, as ``decider`` decides them on its current state;
    returns the ticket after them and the events (none: nothing changed)."""

    async def attempt() -> tuple[Ticket, list[DomainEvent]]:
        # Read and decide outside the write transaction (the append's version check
        # keeps it safe): on SQLite a second connection inside one would wait for it.
        now = tickets.clock()
        history = timed(await tickets.store.read_stream(tenant_id, ticket_id))
        before = existing(fold(history), ticket_id)
        tickets.check_version(f"ticket {ticket_id}", expected, before.version)
        events = await decider(before, now, await calendar_of(tickets, tenant_id, before))
        if not events:
            return before, []
        after = existing(fold([*history, *((e, now) for e in events)]), ticket_id)
        calendar = await calendar_of(tickets, tenant_id, after)
        rules = await escalation_rules(tickets, tenant_id)
        async with tickets.engine.begin() as conn:
            await tickets.store.append(
                tenant_id,
                ticket_id,
                before.version,
                new_events(events, before.customer_id, now),
                conn=conn,
            )
            await ticket_list.save(conn, tenant_id, after, calendar, now, rules)
        tickets.appended(len(events))
        ticket_metrics.changed(before, after, events, calendar)
        return after, events

    return await tickets.retrying(f"ticket {ticket_id}", expected, attempt)


async def handle(
    tickets: Tickets,
    tenant_id: str,
    command: TicketCommand,
    *,
    expected: int | None = None,
    bearer: str | None = None,
) -> tuple[Ticket, list[DomainEvent]]:
    """A caller's command on an existing ticket."""

    async def decider(
        ticket: Ticket, now: datetime, calendar: BusinessCalendar
    ) -> list[DomainEvent]:
        sla = None
        if isinstance(command, ChangePriority) and ticket.sla is not None:
            sla = await _targets(tickets, tenant_id, ticket, command.priority, bearer)
        return decide(command, ticket, now, sla=sla, calendar=calendar)

    return await change(tickets, tenant_id, command.ticket_id, decider, expected=expected)


async def _targets(
    tickets: Tickets, tenant_id: str, ticket: Ticket, priority: Priority, bearer: str | None
) -> AppliedSla | None:
    """The targets the ticket's policy (its current version) sets for ``priority``."""
    assert ticket.sla is not None
    try:
        customer: KnownCustomer | None = await tickets.directory.find(
            tenant_id, ticket.customer_id, bearer
        )
    except NotFound:
        customer = None
    return await applied_sla(tickets, tenant_id, ticket.sla.policy, priority, customer)


async def look_after(tickets: Tickets, tenant_id: str, ticket_id: str) -> list[DomainEvent]:
    """What the SLA scheduler does to a ticket that is due: record every target missed
    and not yet recorded, then fire every escalation rule whose time has come. Each
    exactly once: a second attempt (another process, a retry after a restart) finds it
    recorded, or loses the append race and then finds it recorded."""
    done: list[DomainEvent] = []
    for target in TARGETS:
        command = RecordBreach(ticket_id=ticket_id, by="sla", target=target)
        try:
            _, events = await handle(tickets, tenant_id, command)
        except NoBreach:
            continue
        except DomainError as refused:  # closed meanwhile, or busy: looked at again later
            log.info("breach of %s %s not recorded: %s", ticket_id, target, refused)
            continue
        done += events
    for rule in await escalation_rules(tickets, tenant_id):

        async def by_rule(
            ticket: Ticket, now: datetime, calendar: BusinessCalendar, rule: EscalationRule = rule
        ) -> list[DomainEvent]:
            sla = None
            if rule.raise_priority and ticket.sla is not None:
                raised = raise_priority(ticket.priority)
                sla = await _targets(tickets, tenant_id, ticket, raised, None)
            return escalate(rule, ticket, calendar, now, sla)

        try:
            done += (await change(tickets, tenant_id, ticket_id, by_rule))[1]
        except DomainError as refused:
            log.info("escalation %s of %s not done: %s", rule.name, ticket_id, refused)
    if not done:
        # Nothing was due after all (answered, paused, recorded already): bring
        # next_due_at up to date so the scheduler does not look again and again.
        await refresh_next_due(tickets, tenant_id, ticket_id)
    return done


async def refresh_next_due(tickets: Tickets, tenant_id: str, ticket_id: str) -> None:
    now = tickets.clock()
    ticket = existing(fold(timed(await tickets.store.read_stream(tenant_id, ticket_id))), ticket_id)
    calendar = await calendar_of(tickets, tenant_id, ticket)
    rules = await escalation_rules(tickets, tenant_id)
    async with tickets.engine.begin() as conn:
        # Only the schedule: a concurrent change writes the whole row, schedule included.
        await ticket_list.reschedule(conn, tenant_id, ticket, calendar, now, rules)


async def dispatched(
    tickets: Tickets, tenant_id: str, opened: Sequence[DomainEvent], customer: KnownCustomer
) -> list[DomainEvent]:
    """The assignment the tenant's dispatch rules make for a new ticket (none: no rule)."""
    first = opened[0]
    assert isinstance(first, TicketOpened)
    rule = matching_rule(await dispatch_rules(tickets, tenant_id), first, customer.tags)
    if rule is None:
        return []
    workload, last = await ticket_list.workload(tickets.engine, tenant_id, rule.group, rule.agents)
    return [dispatch(rule, first, workload=workload, last_assigned=last)]
