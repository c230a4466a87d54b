"""Orders under /api/v1: placed, imported, refunded, cancelled; a customer's orders and
purchase figures (the conventions of ``conventions.py``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import uuid4

from fastapi import (
    Depends,
    File,
    Form,
    Query,
    Request,
    Response,
    UploadFile,
    status,
)
from pydantic import BaseModel, Field

from libs.auth import Principal, require
from libs.platform.dependencies import (
    Body,
    IfMatch,
    bearer_token,
    command_from,
    decode_cursor,
    encode_cursor,
    etag_for,
)
from libs.platform.routing import REPLAYED, ServiceRouter
from libs.platform.types import Instant
from services.pipeline.api.conventions import (
    MAX_PAGE,
    ItemId,
    OrderWriter,
    PipelineDep,
    Reader,
    Refunder,
    WrittenItem,
    written,
)
from services.pipeline.commands import (
    MAX_LINES,
    CancelOrder,
    LineToRefund,
    MinorUnits,
    OrderLine,
    PlaceOrder,
    PositiveMinorUnits,
    RefundOrder,
)
from services.pipeline.handlers import order_import
from services.pipeline.handlers import orders as handlers
from services.pipeline.read_model import order_list

router = ServiceRouter(prefix="/api/v1", tags=["pipeline"])


class OrderBody(Body):
    customer_id: str
    external_id: str | None = None
    currency: str
    lines: list[OrderLine] = Field(default=[], max_length=MAX_LINES)
    # What the customer paid: the lines, plus shipping, less the discount (derived when
    # left out; given, it must add up).
    total: MinorUnits | None = None
    shipping: MinorUnits = 0
    discount: MinorUnits = 0
    placed_at: Instant | None = None


class RefundBody(Body):
    # Chosen by the caller so a retried request refunds once.
    refund_id: str | None = None
    amount: PositiveMinorUnits | None = None
    lines: list[LineToRefund] | None = None
    reason: str = ""


class CancelBody(Body):
    reason: str = ""


@router.post("/orders", status_code=status.HTTP_201_CREATED, responses=REPLAYED)
async def place_order(
    body: OrderBody,
    request: Request,
    response: Response,
    principal: OrderWriter,
    pipeline: PipelineDep,
) -> WrittenItem:
    """Place an order (money in minor units). The same ``external_id`` again is the same
    order: 200 with its id instead of 201, never a second order."""
    command = command_from(PlaceOrder, body.model_dump(exclude_unset=True), order_id=str(uuid4()))
    result = await handlers.place_order(
        pipeline, principal.tenant_id, command, bearer=bearer_token(request)
    )
    if not result.created:
        response.status_code = status.HTTP_200_OK
    response.headers["Location"] = f"{router.prefix}/orders/{result.id}"
    return written(response, result)


@router.post("/orders/import")
async def import_orders(
    file: Annotated[UploadFile, File(description="CSV, UTF-8 (BOM or not), UTF-16 or GBK")],
    request: Request,
    principal: Annotated[Principal, Depends(require("orders:import"))],
    pipeline: PipelineDep,
    amounts: Annotated[
        Literal["minor", "decimal"],
        Form(description='"minor": 1250 is 12.50 CNY; "decimal": amounts written as 12.50'),
    ] = "minor",
    timezone: Annotated[str, Form(description="zone of times written without one")] = "UTC",
) -> dict[str, Any]:
    """Import historic orders (columns customer_id, currency, placed_at, external_id,
    total; sku, name, quantity, unit_price per line; rows sharing an external_id are one
    order). Answers what happened: created, already imported, and errors by row and
    field; a bad row never stops the good ones, and importing the file again creates
    nothing."""
    report = await order_import.import_orders(
        pipeline,
        principal.tenant_id,
        await file.read(),
        amounts=amounts,
        timezone=timezone,
        bearer=bearer_token(request),
        batch_size=request.app.state.settings.import_batch_size,
    )
    return report.as_json()


@router.get("/orders/{order_id}")
async def get_order(
    order_id: ItemId, response: Response, principal: Reader, pipeline: PipelineDep
) -> dict[str, Any]:
    found = await handlers.order(pipeline, principal.tenant_id, order_id)
    response.headers["ETag"] = etag_for(found.version)
    return handlers.order_view(found)


@router.post("/orders/{order_id}/refunds", status_code=status.HTTP_201_CREATED, responses=REPLAYED)
async def refund_order(
    order_id: ItemId,
    body: RefundBody,
    response: Response,
    principal: Refunder,
    pipeline: PipelineDep,
    expected: IfMatch,
) -> WrittenItem:
    """Give money back, by ``amount`` or by ``lines``; never more than what is left."""
    data = body.model_dump(exclude_unset=True)
    data["refund_id"] = body.refund_id or str(uuid4())
    command = command_from(RefundOrder, data, order_id=order_id)
    result = await handlers.change_order(pipeline, principal.tenant_id, command, expected=expected)
    if not result.created:
        response.status_code = status.HTTP_200_OK
    return written(response, result)


@router.post("/orders/{order_id}/cancel")
async def cancel_order(
    order_id: ItemId,
    body: CancelBody,
    response: Response,
    principal: OrderWriter,
    pipeline: PipelineDep,
    expected: IfMatch,
) -> WrittenItem:
    command = command_from(CancelOrder, body.model_dump(), order_id=order_id)
    result = await handlers.change_order(pipeline, principal.tenant_id, command, expected=expected)
    return written(response, result)


class OrderPage(BaseModel):
    items: list[dict[str, Any]]
    next_cursor: str | None


@router.get("/customers/{customer_id}/orders")
async def customer_orders(
    customer_id: ItemId,
    request: Request,
    principal: Reader,
    pipeline: PipelineDep,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
) -> OrderPage:
    """The customer's orders (and those of records merged into it), newest first."""
    records = await pipeline.directory.records(
        principal.tenant_id, customer_id, bearer_token(request)
    )
    before = decode_cursor(cursor, datetime, str) if cursor else None
    async with pipeline.engine.connect() as conn:
        items = await order_list.orders_of(
            conn, principal.tenant_id, records, before=before, limit=limit + 1
        )
    next_cursor = None
    if len(items) > limit:
        items = items[:limit]
        last = items[-1]
        next_cursor = encode_cursor(datetime.fromisoformat(last["placed_at"]), last["id"])
    return OrderPage(items=items, next_cursor=next_cursor)


@router.get("/customers/{customer_id}/purchase-figures")
async def purchase_figures(
    customer_id: ItemId, request: Request, principal: Reader, pipeline: PipelineDep
) -> dict[str, Any]:
    """Order count, money spent net of refunds and average order value per currency,
    first and last order, mean days between orders; cancelled orders do not count."""
    records = await pipeline.directory.records(
        principal.tenant_id, customer_id, bearer_token(request)
    )
    async with pipeline.engine.connect() as conn:
        figures = await order_list.purchase_figures(conn, principal.tenant_id, records)
    return {
        "customer_id": records[0],
        "order_count": figures.order_count,
        "first_order_at": figures.first_order_at.isoformat() if figures.first_order_at else None,
        "last_order_at": figures.last_order_at.isoformat() if figures.last_order_at else None,
        "mean_days_between_orders": figures.mean_days_between_orders,
        "spent": [
            {
                "currency": s.currency,
                "order_count": s.order_count,
                "total_spent": s.total_spent,
                "average_order_value": s.average_order_value,
            }
            for s in figures.spent
        ],
    }
