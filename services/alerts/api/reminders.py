"""Reminders fired: contract renewals and customers gone quiet, soonest due first."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query

from libs.platform.routing import ServiceRouter
from libs.platform.types import PERSON_PATTERN
from services.alerts.api.conventions import AlertsDep, Reader
from services.alerts.read_model import reminder_list

router = ServiceRouter(prefix="/api/v1", tags=["alerts"])


@router.get("/reminders")
async def list_reminders(
    principal: Reader,
    alerts: AlertsDep,
    assignee: Annotated[str | None, Query(pattern=PERSON_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    """Reminders fired (contract renewals, customers gone quiet), soonest due first."""
    async with alerts.engine.connect() as conn:
        items = await reminder_list.find(conn, principal.tenant_id, assignee, limit)
    return {"items": items}
