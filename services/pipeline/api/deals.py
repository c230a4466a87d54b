"""Deals, the tenant's deal stages and the funnel under /api/v1 (the conventions of
``conventions.py``)."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from uuid import uuid4

from fastapi import Depends, Query, Request, Response, status
from pydantic import BaseModel

from libs.auth import Principal, require
from libs.events.catalog.pipeline import DealStage
from libs.platform.dependencies import Body, IfMatch, bearer_token, command_from, etag_for
from libs.platform.errors import Unprocessable
from libs.platform.routing import REPLAYED, ServiceRouter
from libs.platform.types import PERSON_PATTERN, Day, Instant
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
    ID_PATTERN,
    AttachQuote,
    DefineDealStages,
    MinorUnits,
    MoveDeal,
    OpenDeal,
    OrderLine,
    StageInput,
)
from services.pipeline.handlers import deals as handlers
from services.pipeline.read_model import funnel

router = ServiceRouter(prefix="/api/v1", tags=["pipeline"])

DealStatus = Literal["open", "won", "lost"]

DealWriter = Annotated[Principal, Depends(require("deals:write"))]


class StagesBody(Body):
    stages: list[StageInput]


class StagesView(BaseModel):
    stages: list[DealStage]
    version: int


class DealBody(Body):
    customer_id: str
    title: str
    amount: MinorUnits
    currency: str
    expected_close_on: Day | None = None
    # The caller when left out: who opens a deal usually works it.
    owner_id: str | None = None
    stage: str | None = None


class MoveBody(Body):
    stage: str
    reason: str = ""


@router.get("/deal-stages")
async def get_deal_stages(
    response: Response, principal: Reader, pipeline: PipelineDep
) -> StagesView:
    stages, version = await handlers.deal_stages(pipeline, principal.tenant_id)
    response.headers["ETag"] = etag_for(version)
    return StagesView(stages=list(stages), version=version)


@router.put("/deal-stages")
async def define_deal_stages(
    body: StagesBody,
    response: Response,
    principal: Configurer,
    pipeline: PipelineDep,
    expected: IfMatch,
) -> StagesView:
    """The tenant's stages in pipeline order: one ``won`` (100), one ``lost`` (0) and
    at least one ``open`` stage, each with its win probability in percent."""
    command = command_from(DefineDealStages, body.model_dump())
    await handlers.define_deal_stages(pipeline, principal.tenant_id, command, expected=expected)
    return await get_deal_stages(response, principal, pipeline)


@router.post("/deals", status_code=status.HTTP_201_CREATED)
async def open_deal(
    body: DealBody,
    request: Request,
    response: Response,
    principal: DealWriter,
    pipeline: PipelineDep,
) -> WrittenItem:
    data = body.model_dump(exclude_unset=True)
    data.setdefault("owner_id", principal.subject[:64])
    command = command_from(OpenDeal, data, deal_id=str(uuid4()))
    result = await handlers.open_deal(
        pipeline, principal.tenant_id, command, bearer=bearer_token(request)
    )
    response.headers["Location"] = f"{router.prefix}/deals/{result.id}"
    return written(response, result)


@router.get("/deals/{deal_id}")
async def get_deal(
    deal_id: ItemId, response: Response, principal: Reader, pipeline: PipelineDep
) -> dict[str, Any]:
    found = await handlers.deal(pipeline, principal.tenant_id, deal_id)
    response.headers["ETag"] = etag_for(found.version)
    return handlers.deal_view(found)


@router.post("/deals/{deal_id}/stage")
async def move_deal(
    deal_id: ItemId,
    body: MoveBody,
    response: Response,
    principal: DealWriter,
    pipeline: PipelineDep,
    expected: IfMatch,
) -> WrittenItem:
    """Move the deal to a stage of the tenant; ``reason`` is required into the lost
    stage. Send ``If-Match`` with the version you saw: 412 when it moved since."""
    command = command_from(MoveDeal, body.model_dump(), deal_id=deal_id)
    result = await handlers.change_deal(pipeline, principal.tenant_id, command, expected=expected)
    return written(response, result)


class QuoteBody(Body):
    # Chosen by the caller so a retried request attaches the quote once.
    quote_id: str | None = None
    lines: list[OrderLine]
    total: MinorUnits | None = None
    valid_until: Day | None = None


@router.post("/deals/{deal_id}/quotes", status_code=status.HTTP_201_CREATED, responses=REPLAYED)
async def attach_quote(
    deal_id: ItemId,
    body: QuoteBody,
    response: Response,
    principal: DealWriter,
    pipeline: PipelineDep,
    expected: IfMatch,
) -> WrittenItem:
    """A quote with line items for the open deal, in the deal's currency."""
    data = body.model_dump(exclude_unset=True)
    data["quote_id"] = body.quote_id or str(uuid4())
    command = command_from(AttachQuote, data, deal_id=deal_id)
    result = await handlers.change_deal(pipeline, principal.tenant_id, command, expected=expected)
    if not result.created:
        response.status_code = status.HTTP_200_OK
    return written(response, result)


class DealPage(BaseModel):
    items: list[dict[str, Any]]


@router.get("/deals", responses={404: {"description": "No such customer (customer_id)"}})
async def list_deals(
    request: Request,
    principal: Reader,
    pipeline: PipelineDep,
    customer_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    owner_id: Annotated[str | None, Query(pattern=PERSON_PATTERN)] = None,
    stage: Annotated[str | None, Query(max_length=64)] = None,
    deal_status: Annotated[DealStatus | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
) -> DealPage:
    """The tenant's deals, newest first; ``customer_id`` includes merged records."""
    records = None
    if customer_id is not None:
        records = await pipeline.directory.records(
            principal.tenant_id, customer_id, bearer_token(request)
        )
    async with pipeline.engine.connect() as conn:
        items = await funnel.list_deals(
            conn,
            principal.tenant_id,
            customers=records,
            owner_id=owner_id,
            stage=stage,
            status=deal_status,
            limit=limit,
        )
    return DealPage(items=items)


@router.get("/funnel")
async def get_funnel(
    principal: Reader,
    pipeline: PipelineDep,
    start: Annotated[Instant, Query(alias="from")],
    end: Annotated[Instant, Query(alias="to")],
    owner_id: Annotated[str | None, Query(pattern=PERSON_PATTERN)] = None,
) -> dict[str, Any]:
    """Per stage: deals that entered it in [from, to) and their value, conversion to a
    further stage, median days of finished stays; the win rate of deals closed in the
    period; the weighted forecast (amount x probability) of the open deals now."""
    if end <= start:
        raise Unprocessable("to", "must be after from")
    async with pipeline.engine.connect() as conn:
        stages, _ = await handlers.load_stages(pipeline, conn, principal.tenant_id)
        return await funnel.funnel(
            conn, principal.tenant_id, stages, funnel.Period(start, end, owner_id)
        )
