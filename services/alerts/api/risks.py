"""Churn risks: the tenant's customers ranked (kept now, or scored as of a time), and
one customer's risk."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query

from libs.events.catalog.alerts import RiskLevel
from libs.platform.errors import NotFound, Unprocessable
from libs.platform.routing import ServiceRouter
from libs.platform.types import PERSON_PATTERN
from services.alerts.api.conventions import (
    AlertsDep,
    AsOf,
    CustomerId,
    Order,
    Position,
    Reader,
    check_order,
    cursor_for,
    parse_as_of,
    read_cursor,
    risk_view,
)
from services.alerts.domain.risk import value_key
from services.alerts.handlers import ranking
from services.alerts.read_model import churn_facts

router = ServiceRouter(prefix="/api/v1", tags=["alerts"])

# A tenant scored whole on a request (as_of) up to this many customers: about a second
# at most; beyond, the past is a job (decision 0093), never a request held for minutes.
SCORED_ON_REQUEST = 5_000
TOO_MANY_TO_SCORE = (
    f"more than {SCORED_ON_REQUEST:,} customers: a ranking as of a past time is a job "
    "(POST /api/v1/churn/rankings)"
)


@router.get("/churn/risks")
async def list_risks(
    principal: Reader,
    alerts: AlertsDep,
    as_of: AsOf = None,
    level: RiskLevel | None = None,
    owner_id: Annotated[str | None, Query(pattern=PERSON_PATTERN)] = None,
    cursor: Annotated[str | None, Query(max_length=300)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    sort: Order = "revenue_at_risk",
) -> dict[str, Any]:
    """Customers ranked by revenue at risk (the probability of no purchase in the
    next 90 days times the predicted value), largest first, or by churn score
    (``sort=score``), each with its reasons. Without ``as_of``, the ranking kept as
    events arrive and time passes is read a page at a time (each risk says when it
    was assessed); with it, the tenant is scored as of then. A cursor keeps the
    ``as_of`` of the first page, so pages never shift."""
    position: Position | None = None
    if cursor is not None:
        when, position = read_cursor(cursor)
        check_order(position, sort)
    elif as_of is None:
        when = alerts.clock()
    else:
        when, position = parse_as_of(as_of, alerts.clock()), 0
    if position is None or isinstance(position, churn_facts.RankPosition):
        async with alerts.engine.connect() as conn:
            page = await ranking.ranking_page(
                conn,
                principal.tenant_id,
                when,
                order=sort,
                level=level,
                owner_id=owner_id,
                after=position,
                limit=limit + 1,
            )
        more = len(page) > limit
        page = page[:limit]
        next_position: Position | None = (
            ranking.position_of(page[-1].risk, sort) if more else None
        )
    else:
        async with alerts.engine.connect() as conn:
            if await churn_facts.tenant_size(conn, principal.tenant_id, SCORED_ON_REQUEST) > (
                SCORED_ON_REQUEST
            ):
                raise Unprocessable("as_of", TOO_MANY_TO_SCORE)
            ranked = await ranking.risks_as_of(conn, principal.tenant_id, when, owner_id)
        if level is not None:
            ranked = [r for r in ranked if r.risk.level == level]
        if sort == "revenue_at_risk":
            ranked.sort(key=lambda r: value_key(r.risk))
        page = ranked[position : position + limit]
        next_position = position + limit if position + limit < len(ranked) else None
    return {
        "as_of": when.isoformat(),
        "items": [risk_view(r) for r in page],
        "next_cursor": cursor_for(when, next_position) if next_position is not None else None,
    }


@router.get("/customers/{customer_id}/churn-risk")
async def customer_risk(
    customer_id: CustomerId, principal: Reader, alerts: AlertsDep, as_of: AsOf = None
) -> dict[str, Any]:
    """The customer's risk: as kept now (assessed again if due), or scored as of then."""
    async with alerts.engine.connect() as conn:
        if as_of is None:
            when = alerts.clock()
            ranked = await ranking.current_risk(alerts, conn, principal.tenant_id, customer_id)
        else:
            when = parse_as_of(as_of, alerts.clock())
            ranked = await ranking.risk_of(alerts, conn, principal.tenant_id, customer_id, when)
    if ranked is None:
        raise NotFound(f"customer {customer_id} not found")
    return {"as_of": when.isoformat(), **risk_view(ranked)}
