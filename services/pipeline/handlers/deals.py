"""Handlers of deals and the tenant's deal stages: the load, decide, append path of
``handlers/__init__.py``; a deal's stays in stages are written with its events
(``read_model/funnel.py``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from libs.events.catalog.pipeline import DealStage
from libs.events.write_path import new_events
from services.pipeline.commands import AttachQuote, DefineDealStages, MoveDeal, OpenDeal
from services.pipeline.domain import deals
from services.pipeline.handlers import (
    Pipeline,
    Written,
    decoded,
    read_events,
)
from services.pipeline.read_model import funnel

# The tenant's deal stages are one stream of their own.
DEAL_STAGES_STREAM = "deal-stages"


async def load_stages(
    pipeline: Pipeline, conn: AsyncConnection, tenant_id: str
) -> tuple[tuple[DealStage, ...], int]:
    recorded = await pipeline.store.read_stream(tenant_id, DEAL_STAGES_STREAM, conn=conn)
    return deals.fold_stages(decoded(recorded)), len(recorded)


async def deal_stages(pipeline: Pipeline, tenant_id: str) -> tuple[tuple[DealStage, ...], int]:
    async with pipeline.engine.connect() as conn:
        return await load_stages(pipeline, conn, tenant_id)


async def define_deal_stages(
    pipeline: Pipeline, tenant_id: str, command: DefineDealStages, *, expected: int | None
) -> Written:
    async def attempt() -> Written:
        now = pipeline.clock()
        async with pipeline.engine.begin() as conn:
            current, version = await load_stages(pipeline, conn, tenant_id)
            pipeline.check_version(DEAL_STAGES_STREAM, expected, version)
            events = deals.decide_stages(command, current)
            if events:
                version = await pipeline.store.append(
                    tenant_id,
                    DEAL_STAGES_STREAM,
                    version,
                    new_events(events, DEAL_STAGES_STREAM, now),
                    conn=conn,
                )
        pipeline.appended(len(events))
        return Written(DEAL_STAGES_STREAM, version, created=bool(events))

    return await pipeline.retrying(DEAL_STAGES_STREAM, expected, attempt)


async def open_deal(
    pipeline: Pipeline, tenant_id: str, command: OpenDeal, *, bearer: str | None
) -> Written:
    customer_id = await pipeline.directory.require(tenant_id, command.customer_id, bearer)
    command = command.model_copy(update={"customer_id": customer_id})

    async def attempt() -> Written:
        now = pipeline.clock()
        async with pipeline.engine.begin() as conn:
            stages, _ = await load_stages(pipeline, conn, tenant_id)
            state = deals.fold(await read_events(pipeline, conn, tenant_id, command.deal_id))
            events = deals.decide(state, command, stages, now)
            version = await pipeline.store.append(
                tenant_id, command.deal_id, 0, new_events(events, customer_id, now), conn=conn
            )
            opened = deals.fold(events)
            assert opened is not None
            await funnel.record_opened(conn, tenant_id, opened, now)
        pipeline.appended(len(events))
        return Written(command.deal_id, version, created=True)

    return await pipeline.retrying(command.deal_id, None, attempt)


async def change_deal(
    pipeline: Pipeline,
    tenant_id: str,
    command: MoveDeal | AttachQuote,
    *,
    expected: int | None,
) -> Written:
    deal_id = command.deal_id

    async def attempt() -> Written:
        now = pipeline.clock()
        async with pipeline.engine.begin() as conn:
            history = await read_events(pipeline, conn, tenant_id, deal_id)
            state = deals.fold(history)
            if state is not None:
                pipeline.check_version(deal_id, expected, state.version)
            stages, _ = await load_stages(pipeline, conn, tenant_id)
            events = deals.decide(state, command, stages, now)
            assert state is not None  # decide refuses a missing deal
            if not events:
                return Written(deal_id, state.version)
            version = await pipeline.store.append(
                tenant_id,
                deal_id,
                state.version,
                new_events(events, state.customer_id, now),
                conn=conn,
            )
            after = deals.fold([*history, *events])
            assert after is not None
            await funnel.record_moved(conn, tenant_id, state, after, now)
        pipeline.appended(len(events))
        return Written(deal_id, version, created=True)

    return await pipeline.retrying(deal_id, expected, attempt)


async def deal(pipeline: Pipeline, tenant_id: str, deal_id: str) -> deals.Deal:
    async with pipeline.engine.connect() as conn:
        state = deals.fold(await read_events(pipeline, conn, tenant_id, deal_id))
    if state is None:
        raise deals.DealNotFound(deal_id)
    return state


def deal_view(deal: deals.Deal) -> dict[str, Any]:
    return {
        "id": deal.id,
        "customer_id": deal.customer_id,
        "title": deal.title,
        "amount": deal.amount,
        "currency": deal.currency,
        "expected_close_on": deal.expected_close_on.isoformat() if deal.expected_close_on else None,
        "owner_id": deal.owner_id,
        "stage": deal.stage,
        "probability": deal.probability,
        "status": deal.status,
        "lost_reason": deal.lost_reason,
        "quotes": [
            {
                "id": quote.quote_id,
                "lines": [line.model_dump() for line in quote.lines],
                "total": quote.total,
                "valid_until": quote.valid_until.isoformat() if quote.valid_until else None,
            }
            for quote in deal.quotes
        ],
        "version": deal.version,
    }
