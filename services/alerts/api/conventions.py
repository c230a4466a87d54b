"""What every alerts endpoint shares: the roles it asks for, the parameters, the
service it reaches, how a risk is shown, and the ranking's page cursors."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, Path, Query, Request

from libs.auth import Principal, require
from libs.platform.dependencies import decode_cursor, encode_cursor, moment_query
from libs.platform.errors import Unprocessable
from services.alerts.domain.cadence import HORIZON_DAYS
from services.alerts.domain.value import VALUE_HORIZON_DAYS, Worth
from services.alerts.handlers import Alerts
from services.alerts.handlers.ranking import RankedRisk
from services.alerts.read_model import churn_facts

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


def parse_as_of(value: str | None, now: datetime) -> datetime:
    return moment_query("as_of", value, end_of_day=True) or now


def worth_view(worth: Worth) -> dict[str, Any]:
    """What a customer at risk is worth (decision 0101), with the horizons it is for."""
    p = worth.no_purchase_probability
    return {
        "no_purchase_probability": round(p, 4) if p is not None else None,
        "horizon_days": HORIZON_DAYS,
        "predicted_value": worth.predicted_value,
        "value_horizon_days": VALUE_HORIZON_DAYS,
        "revenue_at_risk": worth.revenue_at_risk,
    }


def risk_view(ranked: RankedRisk) -> dict[str, Any]:
    risk = ranked.risk
    return {
        "customer_id": risk.customer_id,
        "score": risk.score,
        "level": risk.level,
        "owner_id": ranked.owner_id,
        "reasons": [r.model_dump(mode="json") for r in risk.reasons],
        **worth_view(risk.worth),
        "assessed_at": ranked.assessed_at.isoformat() if ranked.assessed_at else None,
    }


# A page of the ranking ends at an offset (a ranking scored as of a time) or at a
# position in the kept ranking (as of now); either way the first page's as_of holds.
Position = int | churn_facts.RankPosition


def cursor_for(as_of: datetime, position: Position) -> str:
    if isinstance(position, int):
        return encode_cursor(as_of, position)
    at = (position.score, position.lapse_rank, position.customer_id)
    if position.revenue_at_risk is None:
        return encode_cursor(as_of, *at)
    return encode_cursor(as_of, position.revenue_at_risk, *at)


def read_cursor(cursor: str) -> tuple[datetime, Position]:
    """The first page's time and where the last page ended: an offset, or a position
    in the kept ranking by score or by revenue at risk (not ours: a 422)."""
    try:
        when, offset = decode_cursor(cursor, datetime, int)
        return when, offset
    except Unprocessable:
        pass
    try:
        when, score, lapse, customer_id = decode_cursor(cursor, datetime, int, int, str)
        return when, churn_facts.RankPosition(score, lapse, customer_id)
    except Unprocessable:
        when, at_risk, score, lapse, customer_id = decode_cursor(
            cursor, datetime, int, int, int, str
        )
        return when, churn_facts.RankPosition(score, lapse, customer_id, at_risk)


Order = Annotated[
    churn_facts.RankOrder,
    Query(description="revenue_at_risk (the default: the most at stake first) or score"),
]


def check_order(position: Position | None, order: churn_facts.RankOrder) -> None:
    """A cursor belongs to the order it was made in."""
    if isinstance(position, churn_facts.RankPosition) and (
        (position.revenue_at_risk is not None) != (order == "revenue_at_risk")
    ):
        raise Unprocessable("cursor", f"this cursor pages another order than sort={order}")
