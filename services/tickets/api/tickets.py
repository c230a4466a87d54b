"""The tickets HTTP API under /api/v1: parse, authorise, call the handler, answer.

Conventions (as in contacts): the tenant comes from the token only, so another
tenant's ticket is a 404; every answer about one ticket carries ``ETag: "<version>"``
and a write with ``If-Match`` is conditional (412 when the ticket moved on).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import uuid4

from fastapi import Depends, Path, Query, Request, Response, status

from libs.auth import Principal, require
from libs.events.catalog.tickets import Category, Priority, Status
from libs.platform.dependencies import Body, IfMatch, bearer_token, command_from, etag_for
from libs.platform.routing import ServiceRouter
from libs.platform.types import PERSON_PATTERN, Instant
from services.tickets.commands import (
    AssignTicket,
    ChangePriority,
    ChangeStatus,
    OpenTicket,
    RecordFollowUpVisit,
    ReopenTicket,
    ReplyToTicket,
    TicketCommand,
)
from services.tickets.domain.sla import SlaState
from services.tickets.domain.ticket import Ticket
from services.tickets.handlers import Tickets
from services.tickets.handlers import tickets as handlers
from services.tickets.read_model import ticket_list

router = ServiceRouter(prefix="/api/v1", tags=["tickets"])

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"
TicketId = Annotated[str, Path(pattern=ID_PATTERN, description="the ticket's id")]
CustomerId = Annotated[str, Path(pattern=ID_PATTERN, description="the customer's id")]
MAX_PAGE = 200


async def tickets_of(request: Request) -> Tickets:
    tickets: Tickets = request.app.state.tickets
    return tickets


TicketsDep = Annotated[Tickets, Depends(tickets_of)]
Reader = Annotated[Principal, Depends(require("tickets:read"))]
Worker = Annotated[Principal, Depends(require("tickets:write"))]


class Assignment(Body):
    assignee_id: str | None = None
    group: str | None = None


class Reply(Body):
    body: str
    public: bool = True


class StatusChange(Body):
    status: Status


class Reopening(Body):
    reason: str = ""


class PriorityChange(Body):
    priority: Priority


class FollowUpVisit(Body):
    # Chosen by the caller so that a retried request records the visit once.
    visit_id: str | None = None
    # Who visited; the caller when left out. When: now when left out.
    visited_by: str | None = None
    visited_at: Instant | None = None
    outcome: str = ""
    satisfied: bool


def _caller(principal: Principal) -> str:
    return principal.subject[:64]


def _sla_view(state: SlaState) -> dict[str, Any]:
    seconds = int(state.left.total_seconds())
    return {
        "target_minutes": state.minutes,
        # In UTC like every other time the API answers with; the calendar's zone is local.
        "due_at": state.due_at.astimezone(UTC) if state.due_at else None,
        "clock": state.clock,
        "outcome": state.outcome,
        "business_seconds_left": max(seconds, 0),
        "business_seconds_overdue": max(-seconds, 0),
    }


async def _ticket_view(
    tickets: Tickets, tenant_id: str, ticket_id: str, response: Response
) -> dict[str, Any]:
    loaded = await handlers.load(tickets, tenant_id, ticket_id)
    t = loaded.ticket
    calendar = await handlers.calendar_of(tickets, tenant_id, t)
    response.headers["ETag"] = etag_for(t.version)
    sla = None
    if t.sla is not None:
        sla = {
            "policy": t.sla.policy,
            "policy_version": t.sla.policy_version,
            "calendar": t.sla.calendar,
            "calendar_version": t.sla.calendar_version,
            "targets": {
                target: _sla_view(state)
                for target, state in t.sla_states(calendar, tickets.clock()).items()
            },
        }
    return {
        **_summary(t),
        "subject": loaded.subject,
        "channel": loaded.channel,
        "description": loaded.description,
        "requester": loaded.requester,
        "sla": sla,
        "replies": loaded.replies,
    }


def _summary(t: Ticket) -> dict[str, Any]:
    return {
        "id": t.id,
        "customer_id": t.customer_id,
        "category": t.category,
        "priority": t.priority,
        "status": t.status,
        "assignee_id": t.assignee_id,
        "group": t.group,
        "breached": sorted(t.breached),
        "opened_at": t.opened_at,
        "first_response_at": t.first_response_at,
        "solved_at": t.solved_at,
        "version": t.version,
    }


async def _act(
    tickets: Tickets,
    principal: Principal,
    command: TicketCommand,
    response: Response,
    expected: int | None,
    request: Request,
) -> dict[str, Any]:
    ticket, _ = await handlers.handle(
        tickets, principal.tenant_id, command, expected=expected, bearer=bearer_token(request)
    )
    response.headers["ETag"] = etag_for(ticket.version)
    return _summary(ticket)


# --- tickets ---------------------------------------------------------------------------


@router.post(
    "/tickets",
    status_code=status.HTTP_201_CREATED,
    responses={404: {"description": "No such customer in the tenant"}},
)
async def open_ticket(
    command: OpenTicket,
    request: Request,
    response: Response,
    principal: Worker,
    tickets: TicketsDep,
) -> dict[str, Any]:
    """Open a ticket for an existing customer of the tenant (404 for an unknown one)."""
    ticket = await handlers.open_ticket(
        tickets, principal.tenant_id, _caller(principal), command, bearer_token(request)
    )
    response.headers["Location"] = f"{router.prefix}/tickets/{ticket.id}"
    response.headers["ETag"] = etag_for(ticket.version)
    return _summary(ticket)


@router.get("/tickets")
async def list_tickets(
    principal: Reader,
    tickets: TicketsDep,
    status: Status | None = None,
    assignee: Annotated[str | None, Query(pattern=PERSON_PATTERN)] = None,
    group: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    category: Category | None = None,
    priority: Priority | None = None,
    breached: bool | None = None,
    customer: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
) -> dict[str, Any]:
    """The tenant's tickets, newest first; pass ``next_cursor`` back as ``cursor``."""
    page = await ticket_list.search(
        tickets.engine,
        principal.tenant_id,
        filters={
            "status": status,
            "assignee_id": assignee,
            "group": group,
            "category": category,
            "priority": priority,
            "breached": breached,
            "customer_id": customer,
        },
        cursor=cursor,
        limit=limit,
    )
    return {"items": page.items, "next_cursor": page.next_cursor}


@router.get("/customers/{customer_id}/tickets")
async def customer_tickets(
    customer_id: CustomerId,
    request: Request,
    principal: Reader,
    tickets: TicketsDep,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
) -> dict[str, Any]:
    """The customer's tickets, newest first; 404 for a customer the tenant does not have
    (asked only when there is no ticket, which is when it could be another tenant's)."""
    page = await ticket_list.search(
        tickets.engine,
        principal.tenant_id,
        filters={"customer_id": customer_id},
        cursor=cursor,
        limit=limit,
    )
    if not page.items and cursor is None:
        await tickets.directory.find(principal.tenant_id, customer_id, bearer_token(request))
    return {"items": page.items, "next_cursor": page.next_cursor}


@router.get("/tickets/{ticket_id}")
async def get_ticket(
    ticket_id: TicketId, response: Response, principal: Reader, tickets: TicketsDep
) -> dict[str, Any]:
    """The ticket, its replies and notes, and the state of each SLA target."""
    return await _ticket_view(tickets, principal.tenant_id, ticket_id, response)


@router.post("/tickets/{ticket_id}/assignment")
async def assign_ticket(
    ticket_id: TicketId,
    body: Assignment,
    request: Request,
    response: Response,
    principal: Worker,
    tickets: TicketsDep,
    expected: IfMatch,
) -> dict[str, Any]:
    command = command_from(
        AssignTicket, body.model_dump(), ticket_id=ticket_id, by=_caller(principal)
    )
    return await _act(tickets, principal, command, response, expected, request)


@router.post("/tickets/{ticket_id}/replies")
async def reply_to_ticket(
    ticket_id: TicketId,
    body: Reply,
    request: Request,
    response: Response,
    principal: Worker,
    tickets: TicketsDep,
    expected: IfMatch,
) -> dict[str, Any]:
    """A public reply (the first one stops the first-response clock) or an internal note."""
    command = command_from(
        ReplyToTicket, body.model_dump(), ticket_id=ticket_id, by=_caller(principal)
    )
    return await _act(tickets, principal, command, response, expected, request)


@router.post("/tickets/{ticket_id}/status")
async def change_status(
    ticket_id: TicketId,
    body: StatusChange,
    request: Request,
    response: Response,
    principal: Worker,
    tickets: TicketsDep,
    expected: IfMatch,
) -> dict[str, Any]:
    """open, pending (waiting on the customer: resolution pauses), solved, closed."""
    command = command_from(
        ChangeStatus, body.model_dump(), ticket_id=ticket_id, by=_caller(principal)
    )
    return await _act(tickets, principal, command, response, expected, request)


@router.post("/tickets/{ticket_id}/reopen")
async def reopen_ticket(
    ticket_id: TicketId,
    body: Reopening,
    request: Request,
    response: Response,
    principal: Worker,
    tickets: TicketsDep,
    expected: IfMatch,
) -> dict[str, Any]:
    command = command_from(
        ReopenTicket, body.model_dump(), ticket_id=ticket_id, by=_caller(principal)
    )
    return await _act(tickets, principal, command, response, expected, request)


@router.post("/tickets/{ticket_id}/priority")
async def change_priority(
    ticket_id: TicketId,
    body: PriorityChange,
    request: Request,
    response: Response,
    principal: Worker,
    tickets: TicketsDep,
    expected: IfMatch,
) -> dict[str, Any]:
    """A new priority re-applies the ticket's SLA policy, measured from its opening."""
    command = command_from(
        ChangePriority, body.model_dump(), ticket_id=ticket_id, by=_caller(principal)
    )
    return await _act(tickets, principal, command, response, expected, request)


@router.post("/tickets/{ticket_id}/follow-up-visits", status_code=status.HTTP_201_CREATED)
async def record_follow_up_visit(
    ticket_id: TicketId,
    body: FollowUpVisit,
    request: Request,
    response: Response,
    principal: Worker,
    tickets: TicketsDep,
    expected: IfMatch,
) -> dict[str, Any]:
    """A follow-up visit (回访); an unsatisfied customer reopens a solved ticket."""
    now: datetime = tickets.clock()
    data = body.model_dump()
    data["visit_id"] = body.visit_id or str(uuid4())
    data["visited_by"] = body.visited_by or _caller(principal)
    data["visited_at"] = body.visited_at or now
    command = command_from(RecordFollowUpVisit, data, ticket_id=ticket_id, by=_caller(principal))
    return await _act(tickets, principal, command, response, expected, request)
