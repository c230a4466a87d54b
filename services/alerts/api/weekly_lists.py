"""The weekly risk list: per owner, the new, rising and still-open risks of an ISO week."""

from __future__ import annotations

from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import Query

from libs.platform.errors import Unprocessable
from libs.platform.routing import ServiceRouter
from libs.platform.types import PERSON_PATTERN
from services.alerts import handlers
from services.alerts.api.conventions import AlertsDep, Order, Reader, risk_view
from services.alerts.domain import weekly
from services.alerts.domain.risk import ChurnRisk
from services.alerts.handlers.ranking import RankedRisk
from services.alerts.read_model import churn_facts

router = ServiceRouter(prefix="/api/v1", tags=["alerts"])


@router.get("/churn/weekly")
async def weekly_risk_list(
    principal: Reader,
    alerts: AlertsDep,
    week: Annotated[str | None, Query(max_length=10, description="ISO week, e.g. 2026-W49")] = None,
    owner_id: Annotated[str | None, Query(pattern=PERSON_PATTERN)] = None,
    sort: Order = "revenue_at_risk",
) -> dict[str, Any]:
    """Per owner: new, rising and still-open churn risks (medium or high) of the week
    (ISO weeks in the tenant's time zone, its rules' ``time_zone``; absent, the running
    week, up to now), each list by revenue at risk or by score (``sort``).
    Published as ``WeeklyRiskListPublished`` every Monday 09:00."""
    now = alerts.clock()
    async with alerts.engine.connect() as conn:
        if week is None:
            rules, _ = await churn_facts.rules_of(conn, principal.tenant_id)
            week = weekly.week_of(now, ZoneInfo(rules.time_zone))
        try:
            lists = await handlers.weekly_lists_of(
                conn, principal.tenant_id, week, now, owner_id, sort
            )
        except weekly.InvalidWeek as refused:
            raise Unprocessable("week", str(refused)) from None
    chosen = week

    def views(risks: list[ChurnRisk], owner_id: str | None) -> list[dict[str, Any]]:
        return [risk_view(RankedRisk(r, owner_id)) for r in risks]

    return {
        "week": chosen,
        "sorted_by": sort,
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
