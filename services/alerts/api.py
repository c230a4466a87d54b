"""The alerts HTTP API under /api/v1: churn risks ranked, one customer's risk, the rules.

The tenant comes from the token only; a customer this tenant does not know is a 404.
Reading risks needs ``customers:read``; changing the rules ``churn:configure``.
``as_of`` is a date (the end of that day, UTC) or a time; absent, now.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import Depends, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from libs.auth import Principal, require
from libs.events.catalog.alerts import ChurnRules, RiskLevel
from libs.platform.dependencies import (
    NOT_A_CURSOR,
    IdempotencyKey,
    IfMatch,
    decode_cursor,
    encode_cursor,
    etag_for,
    moment_query,
)
from libs.platform.errors import NotFound, Unprocessable
from libs.platform.routing import ServiceRouter
from libs.platform.types import Instant
from services.alerts import handlers
from services.alerts.domain import weekly
from services.alerts.domain.risk import ChurnRisk
from services.alerts.domain.rules import InvalidRules
from services.alerts.handlers import Alerts, past_rankings, ranking
from services.alerts.handlers.ranking import RankedRisk
from services.alerts.read_model import alert_list, churn_facts, reminder_list

router = ServiceRouter(prefix="/api/v1", tags=["alerts"])

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"
CustomerId = Annotated[str, Path(pattern=ID_PATTERN, description="the customer's id")]
Reader = Annotated[Principal, Depends(require("customers:read"))]
Configurer = Annotated[Principal, Depends(require("churn:configure"))]
# Acting on a warning is the daily work of whoever looks after the customer.
Responder = Annotated[Principal, Depends(require("customers:write"))]
AsOf = Annotated[
    str | None,
    Query(max_length=40, description="a date (the end of that day, UTC) or a time"),
]


async def alerts_of(request: Request) -> Alerts:
    alerts: Alerts = request.app.state.alerts
    return alerts


AlertsDep = Annotated[Alerts, Depends(alerts_of)]


class BacktestBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cutoff: Instant
    horizon_days: int = Field(ge=1, le=3650)


class ResolveBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str = Field(default="", max_length=500)


class DismissBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Why the warning was wrong: feedback the backtest report counts.
    reason: str = Field(min_length=1, max_length=500)


AlertStatus = Literal["open", "acknowledged", "resolved", "dismissed", "left_risk_level"]


class RulesBody(ChurnRules):
    model_config = ConfigDict(extra="forbid", frozen=True)


def parse_as_of(value: str | None, now: datetime) -> datetime:
    return moment_query("as_of", value, end_of_day=True) or now


def risk_view(ranked: RankedRisk) -> dict[str, Any]:
    risk = ranked.risk
    return {
        "customer_id": risk.customer_id,
        "score": risk.score,
        "level": risk.level,
        "owner_id": ranked.owner_id,
        "reasons": [r.model_dump(mode="json") for r in risk.reasons],
        "assessed_at": ranked.assessed_at.isoformat() if ranked.assessed_at else None,
    }


# A page of the ranking ends at an offset (a ranking scored as of a time) or at a
# position in the kept ranking (as of now); either way the first page's as_of holds.
Position = int | churn_facts.RankPosition


def _cursor(as_of: datetime, position: Position) -> str:
    if isinstance(position, int):
        return encode_cursor(as_of, position)
    return encode_cursor(as_of, position.score, position.last_order_at, position.customer_id)


def _from_cursor(cursor: str) -> tuple[datetime, Position]:
    try:
        when, offset = decode_cursor(cursor, datetime, int)
        return when, offset
    except Unprocessable:
        # Not an offset: a position in the kept ranking (or not ours: a 422 all the same).
        when, score, last_order_at, customer_id = decode_cursor(
            cursor, datetime, int, datetime, str
        )
        return when, churn_facts.RankPosition(score, last_order_at, customer_id)


@router.get("/churn/risks")
async def list_risks(
    principal: Reader,
    alerts: AlertsDep,
    as_of: AsOf = None,
    level: RiskLevel | None = None,
    owner_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    cursor: Annotated[str | None, Query(max_length=300)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    """Customers ranked by churn score, highest first, each with its reasons. Without
    ``as_of``, the ranking kept as events arrive and time passes is read a page at a
    time (each risk says when it was assessed); with it, the tenant is scored as of
    then. A cursor keeps the ``as_of`` of the first page, so pages never shift."""
    position: Position | None = None
    if cursor is not None:
        when, position = _from_cursor(cursor)
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
                level=level,
                owner_id=owner_id,
                after=position,
                limit=limit + 1,
            )
        more = len(page) > limit
        page = page[:limit]
        next_position: Position | None = ranking.position_of(page[-1].risk) if more else None
    else:
        async with alerts.engine.connect() as conn:
            ranked = await ranking.risks_as_of(conn, principal.tenant_id, when, owner_id)
        if level is not None:
            ranked = [r for r in ranked if r.risk.level == level]
        page = ranked[position : position + limit]
        next_position = position + limit if position + limit < len(ranked) else None
    return {
        "as_of": when.isoformat(),
        "items": [risk_view(r) for r in page],
        "next_cursor": _cursor(when, next_position) if next_position is not None else None,
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
            ranked = await ranking.risk_of(conn, principal.tenant_id, customer_id, when)
    if ranked is None:
        raise NotFound(f"customer {customer_id} not found")
    return {"as_of": when.isoformat(), **risk_view(ranked)}


@router.get("/churn/rules")
async def get_rules(principal: Reader, alerts: AlertsDep, response: Response) -> dict[str, Any]:
    async with alerts.engine.connect() as conn:
        rules, version = await churn_facts.rules_of(conn, principal.tenant_id)
    response.headers["ETag"] = etag_for(version)
    return rules.model_dump(mode="json")


@router.put("/churn/rules")
async def put_rules(
    body: RulesBody,
    principal: Configurer,
    alerts: AlertsDep,
    response: Response,
    expected: IfMatch = None,
) -> dict[str, Any]:
    """Replace the tenant's churn rules (signals left out keep their defaults)."""
    rules = ChurnRules.model_validate(body.model_dump())
    try:
        saved, version = await handlers.set_rules(
            alerts, principal.tenant_id, rules, principal.subject, expected
        )
    except InvalidRules as refused:
        raise Unprocessable(refused.field, refused.reason) from None
    response.headers["ETag"] = etag_for(version)
    return saved.model_dump(mode="json")


@router.post("/churn/backtests")
async def run_backtest(
    body: BacktestBody, principal: Configurer, alerts: AlertsDep
) -> dict[str, Any]:
    """Score as of ``cutoff``, compare with who bought nothing within the horizon, and
    report ROC AUC, precision and recall per level and lift by decile, beside the plain
    "days since last order" ranking. The horizon must have passed."""
    horizon = timedelta(days=body.horizon_days)
    if body.cutoff + horizon > alerts.clock():
        raise Unprocessable(
            "horizon_days", "the horizon has not passed yet: its outcome is unknown"
        )
    async with alerts.engine.connect() as conn:
        return await ranking.backtest(conn, principal.tenant_id, body.cutoff, horizon)


class PastRankingBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    as_of: Instant
    owner_id: str | None = Field(default=None, pattern=ID_PATTERN)
    # A backtest too: judged against who bought nothing within this many days after.
    horizon_days: int | None = Field(default=None, ge=1, le=3650)


RankingId = Annotated[str, Path(pattern=r"^[0-9a-f-]{36}$", description="the ranking's id")]


def past_ranking_view(job: past_rankings.PastRanking) -> dict[str, Any]:
    return {
        "ranking_id": job.ranking_id,
        "as_of": job.as_of.isoformat(),
        "owner_id": job.owner_id,
        "horizon_days": job.horizon_days,
        "backtest": job.report,
        "status": job.status,
        "ranked": job.ranked,
        "error": job.error,
        "requested_at": job.requested_at.isoformat(),
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
    }


@router.post(
    "/churn/rankings",
    status_code=202,
    responses={200: {"description": "The job this Idempotency-Key asked for already"}},
)
async def request_past_ranking(
    body: PastRankingBody,
    principal: Configurer,
    alerts: AlertsDep,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> dict[str, Any]:
    """Rank every customer as of a past time, as a job: 202 and its ``Location``, where
    its status and, once done, its ranking a page at a time are read. With
    ``horizon_days`` it is a backtest too (its report in ``backtest``, as ``POST
    /api/v1/churn/backtests`` answers it). The same ``Idempotency-Key`` returns the
    same job (200)."""
    now = alerts.clock()
    if body.as_of > now:
        raise Unprocessable("as_of", "a past time: the ranking now is GET /api/v1/churn/risks")
    if body.horizon_days is not None and body.as_of + timedelta(days=body.horizon_days) > now:
        raise Unprocessable(
            "horizon_days", "the horizon has not passed yet: its outcome is unknown"
        )
    job, created = await past_rankings.request(
        alerts.engine,
        principal.tenant_id,
        body.as_of,
        body.owner_id,
        principal.subject,
        now,
        idempotency_key,
        body.horizon_days,
    )
    if not created:
        response.status_code = 200
    response.headers["Location"] = f"/api/v1/churn/rankings/{job.ranking_id}"
    return past_ranking_view(job)


@router.get("/churn/rankings/{ranking_id}")
async def read_past_ranking(
    ranking_id: RankingId,
    principal: Reader,
    alerts: AlertsDep,
    cursor: Annotated[str | None, Query(max_length=300)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    """A ranking as of a past time: its status, and once done a page of its ranked
    customers (``items``, ``next_cursor``)."""
    after = 0
    if cursor is not None:
        _, position = _from_cursor(cursor)
        if not isinstance(position, int):
            raise Unprocessable("cursor", NOT_A_CURSOR)
        after = position
    async with alerts.engine.connect() as conn:
        job = await past_rankings.job(conn, principal.tenant_id, ranking_id)
        if job is None:
            raise NotFound(f"ranking {ranking_id} not found")
        found = await past_rankings.rows(conn, principal.tenant_id, ranking_id, after, limit + 1)
    more = len(found) > limit
    found = found[:limit]
    return {
        **past_ranking_view(job),
        "items": [
            {
                "position": r.position,
                "customer_id": r.customer_id,
                "score": r.score,
                "level": r.level,
                "owner_id": r.owner_id,
                "reasons": r.reasons,
                "assessed_at": job.as_of.isoformat(),
            }
            for r in found
        ],
        "next_cursor": _cursor(job.as_of, found[-1].position) if more else None,
    }


@router.get("/churn/weekly")
async def weekly_risk_list(
    principal: Reader,
    alerts: AlertsDep,
    week: Annotated[str | None, Query(max_length=10, description="ISO week, e.g. 2026-W49")] = None,
    owner_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
) -> dict[str, Any]:
    """Per owner: new, rising and still-open churn risks (medium or high) of the week
    (ISO weeks in the tenant's time zone, its rules' ``time_zone``; absent, the running
    week, up to now). Published as ``WeeklyRiskListPublished`` every Monday 09:00."""
    now = alerts.clock()
    async with alerts.engine.connect() as conn:
        if week is None:
            rules, _ = await churn_facts.rules_of(conn, principal.tenant_id)
            week = weekly.week_of(now, ZoneInfo(rules.time_zone))
        try:
            lists = await handlers.weekly_lists_of(conn, principal.tenant_id, week, now, owner_id)
        except weekly.InvalidWeek as refused:
            raise Unprocessable("week", str(refused)) from None
    chosen = week

    def views(risks: list[ChurnRisk], owner_id: str | None) -> list[dict[str, Any]]:
        return [risk_view(RankedRisk(r, owner_id)) for r in risks]

    return {
        "week": chosen,
        "owners": [
            {
                "owner_id": o.owner_id,
                "new": views(o.new, o.owner_id),
                "rising": views(o.rising, o.owner_id),
                "still_open": views(o.still_open, o.owner_id),
            }
            for o in lists
        ],
    }


def alert_view(row: Any) -> dict[str, Any]:
    return {
        "alert_id": row.alert_id,
        "customer_id": row.customer_id,
        "owner_id": row.owner_id,
        "level": row.level,
        "score": row.score,
        "reasons": row.reasons,
        "status": row.status,
        "opened_at": row.opened_at.isoformat(),
        "closed_at": row.closed_at.isoformat() if row.closed_at else None,
        "closed_by": row.closed_by,
        "reason": row.reason,
    }


@router.get("/churn/alerts")
async def list_alerts(
    principal: Reader,
    alerts: AlertsDep,
    status: AlertStatus | None = None,
    owner_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    """Churn alerts, newest first."""
    async with alerts.engine.connect() as conn:
        rows = await alert_list.find_alerts(conn, principal.tenant_id, status, owner_id, limit)
    return {"items": [alert_view(r) for r in rows]}


AlertId = Annotated[str, Path(pattern=r"^[0-9a-f-]{36}$")]


async def _respond(
    alerts: Alerts, principal: Principal, alert_id: str, response: str, reason: str = ""
) -> dict[str, Any]:
    await handlers.respond_to_alert(
        alerts, principal.tenant_id, alert_id, response, principal.subject[:64], reason
    )
    async with alerts.engine.connect() as conn:
        row = await alert_list.alert(conn, principal.tenant_id, alert_id)
    return alert_view(row)


@router.post("/churn/alerts/{alert_id}/acknowledge")
async def acknowledge_alert(
    alert_id: AlertId, principal: Responder, alerts: AlertsDep
) -> dict[str, Any]:
    return await _respond(alerts, principal, alert_id, "acknowledged")


@router.post("/churn/alerts/{alert_id}/resolve")
async def resolve_alert(
    alert_id: AlertId, body: ResolveBody, principal: Responder, alerts: AlertsDep
) -> dict[str, Any]:
    return await _respond(alerts, principal, alert_id, "resolved", body.note)


@router.post("/churn/alerts/{alert_id}/dismiss")
async def dismiss_alert(
    alert_id: AlertId, body: DismissBody, principal: Responder, alerts: AlertsDep
) -> dict[str, Any]:
    """The warning was wrong: its reason is counted in the backtest report."""
    return await _respond(alerts, principal, alert_id, "dismissed", body.reason)


@router.get("/reminders")
async def list_reminders(
    principal: Reader,
    alerts: AlertsDep,
    assignee: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    """Reminders fired (contract renewals, customers gone quiet), soonest due first."""
    async with alerts.engine.connect() as conn:
        items = await reminder_list.find(conn, principal.tenant_id, assignee, limit)
    return {"items": items}
