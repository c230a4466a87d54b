"""Rankings as of a past time: requested as a job (a backtest too, with a horizon), read
a page at a time once done."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from libs.platform.dependencies import NOT_A_CURSOR, IdempotencyKey
from libs.platform.errors import NotFound, Unprocessable
from libs.platform.routing import ServiceRouter
from libs.platform.types import PERSON_PATTERN, Instant
from services.alerts.api.conventions import (
    AlertsDep,
    Configurer,
    Reader,
    cursor_for,
    read_cursor,
    worth_view,
)
from services.alerts.domain.value import Worth
from services.alerts.handlers import past_rankings

router = ServiceRouter(prefix="/api/v1", tags=["alerts"])


class PastRankingBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    as_of: Instant
    owner_id: str | None = Field(default=None, pattern=PERSON_PATTERN)
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
        _, position = read_cursor(cursor)
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
                **worth_view(
                    Worth(r.no_purchase_probability, r.predicted_value, r.revenue_at_risk)
                ),
                "assessed_at": job.as_of.isoformat(),
            }
            for r in found
        ],
        "next_cursor": cursor_for(job.as_of, found[-1].position) if more else None,
    }
