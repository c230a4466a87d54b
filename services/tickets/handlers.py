"""The tickets use cases: load, decide, append, update the read model, in one transaction.

Every command reads the ticket's stream, folds it, asks the pure domain for new
events at ``now`` from the injected clock, then appends them at the version read,
together with the ticket's read-model row (its ``next_due_at`` recomputed) and the
outbox. Without If-Match a race is decided again on fresher state (a few times, then
409); with If-Match a different version is a 412.

SLA policies and business calendars are streams of their own (``sla-policy:<name>``,
``business-calendar:<name>``): each version is an event, so a ticket can name the
exact versions that measure it, and an old calendar version is never lost.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from libs.events import metrics
from libs.events.catalog import DomainEvent
from libs.events.catalog.tickets import (
    BusinessCalendarDefined,
    Priority,
    SlaBreached,
    SlaPolicyDefined,
    Targets,
    TicketOpened,
    TicketReplied,
    catalog,
)
from libs.events.store import ConcurrencyConflict, EventStore, NewEvent, RecordedEvent
from libs.platform.app import current_correlation_id
from libs.platform.errors import Conflict, DomainError, NotFound, PreconditionFailed, Unprocessable
from services.tickets import metrics as ticket_metrics
from services.tickets import read_model
from services.tickets.commands import (
    ChangePriority,
    DefineBusinessCalendar,
    DefineSlaPolicy,
    OpenTicket,
    RecordBreach,
    TicketCommand,
)
from services.tickets.domain.calendar import STANDARD, BusinessCalendar
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
from services.tickets.known_customers import CustomerDirectory, KnownCustomer

log = logging.getLogger(__name__)

SERVICE = "tickets"
SOURCE = "/crm/tickets"
ATTEMPTS = 10
DEFAULT_POLICY = "default"
T = TypeVar("T")


class StaleVersion(PreconditionFailed):
    def __init__(self, stream: str, expected: int, current: int | None = None) -> None:
        if current is None:  # lost a race at append time: only "moved on" is known
            super().__init__(f"{stream} changed since version {expected}")
        else:
            super().__init__(
                f"{stream} is at version {current}, not {expected}", current_version=current
            )


class BusyTicket(Conflict):
    def __init__(self, stream: str) -> None:
        super().__init__(f"{stream} changed concurrently; try again")


class PolicyNotFound(NotFound):
    def __init__(self, name: str) -> None:
        super().__init__(f"SLA policy {name} not found", policy=name)


class CalendarNotFound(NotFound):
    def __init__(self, name: str) -> None:
        super().__init__(f"business calendar {name} not found", calendar=name)


@dataclass
class Tickets:
    """What the handlers need, wired once by ``app.create_app`` (tests wire their own)."""

    store: EventStore
    directory: CustomerDirectory
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    on_append: Callable[[], None] = field(default=lambda: None)
    # Calendar versions never change once written: (tenant, name, version) -> calendar.
    calendars: dict[tuple[str, str, int], BusinessCalendar] = field(default_factory=dict)

    @property
    def engine(self) -> AsyncEngine:
        return self.store.engine

    def appended(self, count: int) -> None:
        if count:
            metrics.EVENTS_APPENDED.labels(SERVICE).inc(count)
            self.on_append()


@dataclass(frozen=True, slots=True)
class Loaded:
    ticket: Ticket
    subject: str
    channel: str
    description: str
    requester: dict[str, str | None]
    replies: list[dict[str, object]]
    history: list[RecordedEvent]


def new_events(events: Sequence[DomainEvent], partition_key: str, now: datetime) -> list[NewEvent]:
    correlation_id = current_correlation_id()
    return [
        NewEvent.from_domain(
            e, partition_key=partition_key, occurred_at=now, correlation_id=correlation_id
        )
        for e in events
    ]


def timed(recorded: Sequence[RecordedEvent]) -> list[tuple[DomainEvent, datetime]]:
    return [(catalog.decode(e.type, e.data), e.occurred_at) for e in recorded]


async def _retrying(stream: str, expected: int | None, attempt: Callable[[], Awaitable[T]]) -> T:
    for _ in range(ATTEMPTS):
        try:
            return await attempt()
        except ConcurrencyConflict:
            if expected is not None:
                raise StaleVersion(stream, expected) from None
    raise BusyTicket(stream)


# --- SLA policies and business calendars -----------------------------------------------


def policy_stream(name: str) -> str:
    return f"sla-policy:{name}"


def calendar_stream(name: str) -> str:
    return f"business-calendar:{name}"


async def define_business_calendar(
    tickets: Tickets,
    tenant_id: str,
    name: str,
    command: DefineBusinessCalendar,
    expected: int | None = None,
) -> BusinessCalendarDefined:
    stream = calendar_stream(name)

    async def attempt() -> BusinessCalendarDefined:
        version = await tickets.store.stream_version(tenant_id, stream)
        if expected is not None and expected != version:
            raise StaleVersion(stream, expected, version)
        event = BusinessCalendarDefined(
            calendar=name,
            version=version + 1,
            time_zone=command.time_zone,
            week={day: [h.model_dump() for h in hours] for day, hours in command.week.items()},  # type: ignore[misc]
            holidays=sorted(set(command.holidays)),
            make_up_days=sorted(set(command.make_up_days)),
            make_up_hours_of=command.make_up_hours_of,
        )
        await tickets.store.append(
            tenant_id, stream, version, new_events([event], stream, tickets.clock())
        )
        tickets.appended(1)
        return event

    return await _retrying(stream, expected, attempt)


async def define_sla_policy(
    tickets: Tickets,
    tenant_id: str,
    name: str,
    command: DefineSlaPolicy,
    expected: int | None = None,
) -> SlaPolicyDefined:
    if command.calendar != STANDARD.name:
        try:
            await current_calendar(tickets, tenant_id, command.calendar)
        except CalendarNotFound:
            raise Unprocessable(
                "calendar", f"no business calendar named {command.calendar}"
            ) from None
    stream = policy_stream(name)

    async def attempt() -> SlaPolicyDefined:
        version = await tickets.store.stream_version(tenant_id, stream)
        if expected is not None and expected != version:
            raise StaleVersion(stream, expected, version)
        event = SlaPolicyDefined(
            policy=name,
            version=version + 1,
            calendar=command.calendar,
            targets={p: Targets(**t.model_dump()) for p, t in command.targets.items()},
            by_tag={
                tag: {p: Targets(**t.model_dump()) for p, t in targets.items()}
                for tag, targets in command.by_tag.items()
            },
        )
        await tickets.store.append(
            tenant_id, stream, version, new_events([event], stream, tickets.clock())
        )
        tickets.appended(1)
        return event

    return await _retrying(stream, expected, attempt)


async def current_policy(tickets: Tickets, tenant_id: str, name: str) -> SlaPolicyDefined:
    recorded = await tickets.store.read_stream(tenant_id, policy_stream(name))
    if not recorded:
        raise PolicyNotFound(name)
    event = catalog.decode(recorded[-1].type, recorded[-1].data)
    assert isinstance(event, SlaPolicyDefined)
    return event


async def current_calendar(tickets: Tickets, tenant_id: str, name: str) -> BusinessCalendarDefined:
    recorded = await tickets.store.read_stream(tenant_id, calendar_stream(name))
    if not recorded:
        raise CalendarNotFound(name)
    event = catalog.decode(recorded[-1].type, recorded[-1].data)
    assert isinstance(event, BusinessCalendarDefined)
    return event


async def calendar_at(
    tickets: Tickets, tenant_id: str, name: str, version: int
) -> BusinessCalendar:
    """The calendar exactly as it was at ``version`` (the standard one for version 0)."""
    if version == 0 or name == STANDARD.name:
        return STANDARD
    key = (tenant_id, name, version)
    if key not in tickets.calendars:
        recorded = await tickets.store.read_stream(
            tenant_id, calendar_stream(name), after_version=version - 1
        )
        if not recorded:
            raise CalendarNotFound(name)
        event = catalog.decode(recorded[0].type, recorded[0].data)
        assert isinstance(event, BusinessCalendarDefined)
        tickets.calendars[key] = BusinessCalendar.from_event(event)
    return tickets.calendars[key]


async def applied_sla(
    tickets: Tickets,
    tenant_id: str,
    policy_name: str,
    priority: Priority,
    customer: KnownCustomer | None,
) -> AppliedSla | None:
    """The targets the policy's current version sets for ``priority`` (tag-specific ones
    first); None when the tenant has no such policy and none was asked for by name."""
    try:
        policy = await current_policy(tickets, tenant_id, policy_name)
    except PolicyNotFound:
        if policy_name == DEFAULT_POLICY:
            return None
        raise Unprocessable("sla_policy", f"no SLA policy named {policy_name}") from None
    targets = policy.targets.get(priority, Targets())
    for tag in customer.tags if customer else ():
        if priority in policy.by_tag.get(tag, {}):
            targets = policy.by_tag[tag][priority]
            break
    calendar_version = 0
    if policy.calendar != STANDARD.name:
        calendar_version = (await current_calendar(tickets, tenant_id, policy.calendar)).version
    minutes = {
        target: value
        for target, value in zip(
            TARGETS, (targets.first_response_minutes, targets.resolution_minutes), strict=True
        )
        if value is not None
    }
    return AppliedSla(policy.policy, policy.version, policy.calendar, calendar_version, minutes)


# --- tickets ---------------------------------------------------------------------------


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
    ticket_id = str(uuid.uuid4())
    now = tickets.clock()
    events = decide_open(command, ticket_id, by, sla)
    ticket = existing(fold((e, now) for e in events), ticket_id)
    calendar = await calendar_of(tickets, tenant_id, ticket)
    async with tickets.engine.begin() as conn:
        await tickets.store.append(
            tenant_id, ticket_id, 0, new_events(events, command.customer_id, now), conn=conn
        )
        await read_model.save(
            conn,
            tenant_id,
            ticket,
            calendar,
            now,
            subject=command.subject,
            channel=command.channel,
        )
    tickets.appended(len(events))
    ticket_metrics.opened(ticket)
    return ticket


async def handle(
    tickets: Tickets,
    tenant_id: str,
    command: TicketCommand,
    *,
    expected: int | None = None,
    bearer: str | None = None,
) -> tuple[Ticket, list[DomainEvent]]:
    """Any command on an existing ticket; returns the ticket after it and the new events."""

    async def attempt() -> tuple[Ticket, list[DomainEvent]]:
        now = tickets.clock()
        async with tickets.engine.begin() as conn:
            recorded = await tickets.store.read_stream(tenant_id, command.ticket_id, conn=conn)
            history = timed(recorded)
            before = existing(fold(history), command.ticket_id)
            if expected is not None and expected != before.version:
                raise StaleVersion(f"ticket {command.ticket_id}", expected, before.version)
            sla = None
            if isinstance(command, ChangePriority) and before.sla is not None:
                customer = await _customer_quietly(tickets, tenant_id, before.customer_id, bearer)
                sla = await applied_sla(
                    tickets, tenant_id, before.sla.policy, command.priority, customer
                )
            calendar = await calendar_of(tickets, tenant_id, before)
            events = decide(command, before, now, sla=sla, calendar=calendar)
            if not events:
                return before, []
            after = fold([*history, *((e, now) for e in events)])
            assert after is not None
            calendar = await calendar_of(tickets, tenant_id, after)
            await tickets.store.append(
                tenant_id,
                command.ticket_id,
                before.version,
                new_events(events, before.customer_id, now),
                conn=conn,
            )
            await read_model.save(conn, tenant_id, after, calendar, now)
        tickets.appended(len(events))
        ticket_metrics.changed(before, after, events, calendar)
        return after, events

    return await _retrying(f"ticket {command.ticket_id}", expected, attempt)


async def _customer_quietly(
    tickets: Tickets, tenant_id: str, customer_id: str, bearer: str | None
) -> KnownCustomer | None:
    try:
        return await tickets.directory.find(tenant_id, customer_id, bearer)
    except NotFound:
        return None


async def record_breaches(tickets: Tickets, tenant_id: str, ticket_id: str) -> list[SlaBreached]:
    """Every target of the ticket missed by now and not yet recorded, each exactly once:
    a second attempt (another process, a retry after a restart) finds it recorded, or
    loses the append race, and records nothing."""
    recorded: list[SlaBreached] = []
    for target in TARGETS:
        try:
            _, events = await handle(
                tickets, tenant_id, RecordBreach(ticket_id=ticket_id, by="sla", target=target)
            )
        except NoBreach:
            continue
        except DomainError as refused:  # closed meanwhile, or busy: looked at again later
            log.info("breach of %s %s not recorded: %s", ticket_id, target, refused)
            continue
        recorded += [e for e in events if isinstance(e, SlaBreached)]
    if not recorded:
        # Nothing was due after all (it was answered, paused or already recorded):
        # bring next_due_at up to date so the scheduler does not look again and again.
        await refresh_next_due(tickets, tenant_id, ticket_id)
    return recorded


async def refresh_next_due(tickets: Tickets, tenant_id: str, ticket_id: str) -> None:
    now = tickets.clock()
    async with tickets.engine.begin() as conn:
        loaded = await load(tickets, tenant_id, ticket_id, conn)
        calendar = await calendar_of(tickets, tenant_id, loaded.ticket)
        await read_model.save(conn, tenant_id, loaded.ticket, calendar, now)
