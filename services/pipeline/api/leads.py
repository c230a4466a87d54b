"""Leads and assignment rules under /api/v1 (the conventions of ``conventions.py``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import uuid4

from fastapi import Depends, Query, Request, Response, status
from pydantic import BaseModel

from libs.auth import Principal, require
from libs.events.catalog.pipeline import AssignmentRule, LeadSource
from libs.platform.dependencies import (
    Body,
    IfMatch,
    bearer_token,
    command_from,
    decode_cursor,
    encode_cursor,
    etag_for,
)
from libs.platform.routing import ServiceRouter
from libs.platform.types import PERSON_PATTERN, Day
from services.pipeline.api.conventions import (
    MAX_PAGE,
    Configurer,
    ItemId,
    PipelineDep,
    Reader,
    WrittenItem,
    written,
)
from services.pipeline.commands import (
    AssignLead,
    CaptureLead,
    DefineAssignmentRules,
    DisqualifyLead,
    MinorUnits,
    QualifyLead,
    RuleInput,
)
from services.pipeline.domain.leads import Lead
from services.pipeline.handlers import leads as handlers
from services.pipeline.read_model import lead_list

router = ServiceRouter(prefix="/api/v1", tags=["pipeline"])

LeadWriter = Annotated[Principal, Depends(require("leads:write"))]
Eraser = Annotated[Principal, Depends(require("customers:erase"))]


def _caller(principal: Principal) -> str:
    return principal.subject[:64]


class LeadBody(Body):
    name: str
    company: str | None = None
    email: str | None = None
    phone: str | None = None
    source: LeadSource
    # Left out: the tenant's assignment rules choose (or the queue).
    owner_id: str | None = None
    territory: str | None = None
    industry: str | None = None


class ReasonBody(Body):
    reason: str


class DealOnConversion(Body):
    title: str
    amount: MinorUnits
    currency: str
    expected_close_on: Day | None = None
    stage: str | None = None


class ConvertBody(Body):
    # A deal to open for the customer in the same step.
    deal: DealOnConversion | None = None


class Converted(WrittenItem):
    customer_id: str
    deal_id: str | None


class LeadPage(BaseModel):
    items: list[dict[str, Any]]
    next_cursor: str | None


class RulesBody(Body):
    rules: list[RuleInput]


class RulesView(BaseModel):
    rules: list[AssignmentRule]
    version: int


def lead_view(lead: Lead) -> dict[str, Any]:
    return {
        "id": lead.id,
        "name": lead.name,
        "company": lead.company,
        "email": lead.email,
        "phone": lead.phone,
        "source": lead.source,
        "territory": lead.territory,
        "industry": lead.industry,
        "owner_id": lead.owner_id,
        "assigned_by": lead.assigned_by,
        "status": lead.status,
        "disqualified_reason": lead.disqualified_reason,
        "customer_id": lead.customer_id,
        "deal_id": lead.deal_id,
        "version": lead.version,
    }


@router.post("/leads", status_code=status.HTTP_201_CREATED)
async def capture_lead(
    body: LeadBody, response: Response, principal: LeadWriter, pipeline: PipelineDep
) -> WrittenItem:
    """A prospect from a form, a call, WeChat, a trade show, a referral or an import;
    assigned to ``owner_id``, else by the tenant's rules, else queued."""
    command = command_from(CaptureLead, body.model_dump(exclude_unset=True), lead_id=str(uuid4()))
    result = await handlers.capture_lead(pipeline, principal.tenant_id, command)
    response.headers["Location"] = f"{router.prefix}/leads/{result.id}"
    return written(response, result)


@router.get("/leads")
async def find_leads(
    principal: Reader,
    pipeline: PipelineDep,
    lead_status: Annotated[str | None, Query(alias="status", pattern=r"^[a-z]{1,16}$")] = None,
    owner_id: Annotated[str | None, Query(pattern=PERSON_PATTERN)] = None,
    queued: bool = False,
    source: LeadSource | None = None,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
) -> LeadPage:
    """Newest first; ``queued=true`` lists the leads no rule could assign."""
    before = decode_cursor(cursor, datetime, str) if cursor else None
    async with pipeline.engine.connect() as conn:
        items = await lead_list.find_leads(
            conn,
            principal.tenant_id,
            status=lead_status,
            owner_id=owner_id,
            queued=queued,
            source=source,
            before=before,
            limit=limit + 1,
        )
    next_cursor = None
    if len(items) > limit:
        items = items[:limit]
        last = items[-1]
        next_cursor = encode_cursor(datetime.fromisoformat(last["captured_at"]), last["id"])
    return LeadPage(items=items, next_cursor=next_cursor)


@router.get("/leads/{lead_id}")
async def get_lead(
    lead_id: ItemId, response: Response, principal: Reader, pipeline: PipelineDep
) -> dict[str, Any]:
    found = await handlers.lead(pipeline, principal.tenant_id, lead_id)
    response.headers["ETag"] = etag_for(found.version)
    return lead_view(found)


class OwnerBody(Body):
    owner_id: str | None


@router.put("/leads/{lead_id}/owner")
async def assign_lead(
    lead_id: ItemId,
    body: OwnerBody,
    response: Response,
    principal: LeadWriter,
    pipeline: PipelineDep,
    expected: IfMatch,
) -> WrittenItem:
    """Hand the open lead to an owner by hand; ``null`` puts it back in the queue."""
    command = command_from(AssignLead, body.model_dump(), lead_id=lead_id)
    result = await handlers.change_lead(pipeline, principal.tenant_id, command, expected=expected)
    return written(response, result)


@router.post("/leads/{lead_id}/qualify")
async def qualify_lead(
    lead_id: ItemId,
    response: Response,
    principal: LeadWriter,
    pipeline: PipelineDep,
    expected: IfMatch,
) -> WrittenItem:
    command = command_from(QualifyLead, {}, lead_id=lead_id, by=_caller(principal))
    result = await handlers.change_lead(pipeline, principal.tenant_id, command, expected=expected)
    return written(response, result)


@router.post("/leads/{lead_id}/disqualify")
async def disqualify_lead(
    lead_id: ItemId,
    body: ReasonBody,
    response: Response,
    principal: LeadWriter,
    pipeline: PipelineDep,
    expected: IfMatch,
) -> WrittenItem:
    command = command_from(
        DisqualifyLead, body.model_dump(), lead_id=lead_id, by=_caller(principal)
    )
    result = await handlers.change_lead(pipeline, principal.tenant_id, command, expected=expected)
    return written(response, result)


@router.post("/leads/{lead_id}/convert")
async def convert_lead(
    lead_id: ItemId,
    body: ConvertBody,
    request: Request,
    response: Response,
    principal: LeadWriter,
    pipeline: PipelineDep,
    expected: IfMatch,
) -> Converted:
    """The qualified lead becomes a customer of contacts, or is linked to the customer
    that already has its email or phone (no duplicate); optionally a deal opens."""
    deal = None
    if body.deal is not None:
        deal = body.deal.model_dump(exclude_unset=True) | {"deal_id": str(uuid4())}
    result, customer_id, deal_id = await handlers.convert_lead(
        pipeline,
        principal.tenant_id,
        lead_id,
        deal=deal,
        bearer=bearer_token(request),
        expected=expected,
    )
    response.headers["ETag"] = etag_for(result.version)
    return Converted(id=result.id, version=result.version, customer_id=customer_id, deal_id=deal_id)


@router.delete("/leads/{lead_id}/personal-data")
async def erase_lead(
    lead_id: ItemId, response: Response, principal: Eraser, pipeline: PipelineDep
) -> WrittenItem:
    """Forget a prospect (right to be forgotten): its name, company, email and phone."""
    result = await handlers.erase_lead(
        pipeline, principal.tenant_id, lead_id, by=_caller(principal)
    )
    return written(response, result)


@router.get("/assignment-rules")
async def get_assignment_rules(
    response: Response, principal: Reader, pipeline: PipelineDep
) -> RulesView:
    rules, version = await handlers.assignment_rules(pipeline, principal.tenant_id)
    response.headers["ETag"] = etag_for(version)
    return RulesView(rules=list(rules), version=version)


@router.put("/assignment-rules")
async def define_assignment_rules(
    body: RulesBody,
    response: Response,
    principal: Configurer,
    pipeline: PipelineDep,
    expected: IfMatch,
) -> RulesView:
    """Rules tried in order for a lead captured without an owner: ``round_robin`` over
    the team, or ``territory`` / ``industry`` equal to ``match``; ``cap`` is the most
    open leads an owner may hold. A lead no rule has room for is queued."""
    command = command_from(DefineAssignmentRules, body.model_dump())
    await handlers.define_assignment_rules(
        pipeline, principal.tenant_id, command, expected=expected
    )
    return await get_assignment_rules(response, principal, pipeline)
