"""Churn alerts: listed, and worked by whoever looks after the customer (acknowledged,
resolved, or dismissed as wrong: feedback the backtest report counts)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Path, Query
from pydantic import BaseModel, ConfigDict, Field

from libs.auth import Principal
from libs.platform.routing import ServiceRouter
from libs.platform.types import PERSON_PATTERN
from services.alerts import handlers
from services.alerts.api.conventions import AlertsDep, Reader, Responder
from services.alerts.handlers import Alerts
from services.alerts.read_model import alert_list

router = ServiceRouter(prefix="/api/v1", tags=["alerts"])


AlertStatus = Literal["open", "acknowledged", "resolved", "dismissed", "left_risk_level"]


class ResolveBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str = Field(default="", max_length=500)


class DismissBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Why the warning was wrong: feedback the backtest report counts.
    reason: str = Field(min_length=1, max_length=500)


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
    owner_id: Annotated[str | None, Query(pattern=PERSON_PATTERN)] = None,
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
