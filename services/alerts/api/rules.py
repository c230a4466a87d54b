"""The tenant's churn rules (read, replaced under If-Match) and the backtest that judges
them against what customers did next."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import Response
from pydantic import BaseModel, ConfigDict, Field

from libs.events.catalog.alerts import ChurnRules
from libs.platform.dependencies import IfMatch, etag_for
from libs.platform.errors import Unprocessable
from libs.platform.routing import ServiceRouter
from libs.platform.types import Instant
from services.alerts import handlers
from services.alerts.api.conventions import AlertsDep, Configurer, Reader
from services.alerts.domain.rules import InvalidRules
from services.alerts.handlers import ranking
from services.alerts.read_model import churn_facts

router = ServiceRouter(prefix="/api/v1", tags=["alerts"])


class RulesBody(ChurnRules):
    model_config = ConfigDict(extra="forbid", frozen=True)


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


class BacktestBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cutoff: Instant
    horizon_days: int = Field(ge=1, le=3650)


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
