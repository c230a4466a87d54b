"""SLA policies, business calendars, escalation and dispatch rules over HTTP.

Managers edit them (``sla:manage``); everyone who reads tickets may read them. Each
PUT is a new version (``ETag``); ``If-Match`` makes it conditional.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Path, Response
from pydantic import BaseModel, ConfigDict, Field

from libs.auth import Principal, require
from libs.events.catalog.tickets import DispatchRule, EscalationRule
from libs.platform.dependencies import IfMatch, etag_for
from libs.platform.routing import ServiceRouter
from services.tickets.api.tickets import Reader, TicketsDep
from services.tickets.commands import DefineBusinessCalendar, DefineSlaPolicy
from services.tickets.handlers import policies

router = ServiceRouter(prefix="/api/v1", tags=["service policies"])

Manager = Annotated[Principal, Depends(require("sla:manage"))]
Name = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")]


class EscalationRules(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rules: list[EscalationRule] = Field(max_length=100)


class DispatchRules(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rules: list[DispatchRule] = Field(max_length=100)


@router.put("/sla-policies/{name}")
async def define_sla_policy(
    name: Name,
    command: DefineSlaPolicy,
    response: Response,
    principal: Manager,
    tickets: TicketsDep,
    expected: IfMatch,
) -> dict[str, Any]:
    """A new version of the policy: first-response and resolution targets per priority,
    in business minutes of its calendar. Tickets keep the version they were opened
    under until their priority changes."""
    event = await policies.define_sla_policy(tickets, principal.tenant_id, name, command, expected)
    response.headers["ETag"] = etag_for(event.version)
    return event.model_dump(mode="json")


@router.get("/sla-policies/{name}")
async def get_sla_policy(
    name: Name, response: Response, principal: Reader, tickets: TicketsDep
) -> dict[str, Any]:
    event = await policies.current_policy(tickets, principal.tenant_id, name)
    response.headers["ETag"] = etag_for(event.version)
    return event.model_dump(mode="json")


@router.put("/business-calendars/{name}")
async def define_business_calendar(
    name: Name,
    command: DefineBusinessCalendar,
    response: Response,
    principal: Manager,
    tickets: TicketsDep,
    expected: IfMatch,
) -> dict[str, Any]:
    """A new version of the calendar: time zone, working hours per weekday, holidays,
    make-up working days. SLA clocks of open tickets keep the version they started with."""
    event = await policies.define_business_calendar(
        tickets, principal.tenant_id, name, command, expected
    )
    response.headers["ETag"] = etag_for(event.version)
    return event.model_dump(mode="json")


@router.get("/business-calendars/{name}")
async def get_business_calendar(
    name: Name, response: Response, principal: Reader, tickets: TicketsDep
) -> dict[str, Any]:
    event = await policies.current_calendar(tickets, principal.tenant_id, name)
    response.headers["ETag"] = etag_for(event.version)
    return event.model_dump(mode="json")


@router.put("/escalation-rules")
async def define_escalation_rules(
    body: EscalationRules,
    response: Response,
    principal: Manager,
    tickets: TicketsDep,
    expected: IfMatch,
) -> dict[str, Any]:
    """The whole rule set: on a breach (``minutes_before`` 0) or that long before it,
    assign to an agent or group, and/or raise the priority one step."""
    event = await policies.define_escalation_rules(
        tickets, principal.tenant_id, body.rules, expected
    )
    response.headers["ETag"] = etag_for(event.version)
    return event.model_dump(mode="json")


@router.get("/escalation-rules")
async def get_escalation_rules(principal: Reader, tickets: TicketsDep) -> dict[str, Any]:
    rules = await policies.escalation_rules(tickets, principal.tenant_id)
    return {"rules": [r.model_dump(mode="json") for r in rules]}


@router.put("/dispatch-rules")
async def define_dispatch_rules(
    body: DispatchRules,
    response: Response,
    principal: Manager,
    tickets: TicketsDep,
    expected: IfMatch,
) -> dict[str, Any]:
    """The whole rule set: the first rule matching a new ticket (category, channel,
    customer tag) assigns it to its group, and to the agent of the group with the fewest
    open tickets, or the next in turn."""
    event = await policies.define_dispatch_rules(tickets, principal.tenant_id, body.rules, expected)
    response.headers["ETag"] = etag_for(event.version)
    return event.model_dump(mode="json")


@router.get("/dispatch-rules")
async def get_dispatch_rules(principal: Reader, tickets: TicketsDep) -> dict[str, Any]:
    rules = await policies.dispatch_rules(tickets, principal.tenant_id)
    return {"rules": [r.model_dump(mode="json") for r in rules]}
