"""The figures: ``GET /api/v1/analytics/{figure}``, the customers behind it
(``.../customers``, a page at a time) and its CSV export (``.../export``, managers
and admins). Every figure takes ``from``, ``to``, ``as_of`` and ``segment``."""

from __future__ import annotations

import csv
import io
import json
from datetime import date, datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import Path, Query
from fastapi.responses import Response

from libs.platform.dependencies import decode_cursor, encode_cursor
from libs.platform.routing import ServiceRouter
from services.analytics.api.conventions import (
    AnalyticsDep,
    Cursor,
    Exporter,
    Limit,
    Reader,
    SegmentParam,
    TimeParam,
    window_of,
)
from services.analytics.domain.figure import Answer
from services.analytics.handlers import Analytics, Window
from services.analytics.handlers.figures import compute

router = ServiceRouter(prefix="/api/v1/analytics", tags=["analytics"])

FigureName = Literal[
    "retention",
    "repurchase-rate",
    "order-frequency",
    "average-order-value",
    "clv",
    "churn-rate",
    "nps",
    "csat",
    "activity",
    "predicted-clv",
]
Figure = Annotated[FigureName, Path(description="which figure")]
Grain = Annotated[Literal["month", "week"], Query(description="cohort or period length")]
By = Annotated[Literal["period", "owner", "category"], Query(description="NPS/CSAT breakdown")]
Horizon = Annotated[int, Query(ge=7, le=3650, description="predicted CLV: days ahead")]
From = Annotated[TimeParam, Query(alias="from", max_length=40)]
To = Annotated[TimeParam, Query(alias="to", max_length=40)]


def _window_view(window: Window) -> dict[str, Any]:
    return {
        "from": window.start.isoformat() if window.start else None,
        "to": window.end.isoformat(),
        "as_of": window.as_of.isoformat(),
        "segment": window.segment,
    }


async def _answer(
    analytics: Analytics,
    tenant_id: str,
    figure: str,
    window: Window,
    grain: str,
    by: str,
    customers: bool = True,
    horizon_days: int = 365,
) -> Answer:
    options = {"grain": grain, "by": by, "customers": customers, "horizon_days": horizon_days}
    return await compute(analytics, tenant_id, figure, window, options)


@router.get("/{figure}")
async def get_figure(
    figure: Figure,
    principal: Reader,
    analytics: AnalyticsDep,
    start: From = None,
    end: To = None,
    as_of: TimeParam = None,
    segment: SegmentParam = None,
    grain: Grain = "month",
    by: By = "period",
    horizon_days: Horizon = 365,
) -> dict[str, Any]:
    """The figure, how it was computed, its table (per cohort, month, owner...) and
    where to find the customers behind it."""
    window = window_of(analytics, start, end, as_of, segment)
    answer = await _answer(
        analytics, principal.tenant_id, figure, window, grain, by, False, horizon_days
    )
    query = {
        "from": start,
        "to": end,
        "as_of": window.as_of.isoformat(),
        "segment": segment,
        "grain": grain,
        "by": by,
        "horizon_days": horizon_days if figure == "predicted-clv" else None,
    }
    drill = urlencode({k: v for k, v in query.items() if v is not None})
    return {
        "figure": answer.figure,
        **_window_view(window),
        **answer.summary,
        "method": answer.method,
        "table": answer.table,
        "drill_down": f"/api/v1/analytics/{figure}/customers?{drill}",
    }


def _matching(
    rows: list[dict[str, Any]], cohort: date | None, period: int | None, month: str | None
) -> list[dict[str, Any]]:
    """The rows of one cell: a cohort (and a period after it), or a month."""
    if cohort is not None:
        rows = [r for r in rows if r.get("cohort_start") == cohort.isoformat()]
    if period is not None:
        rows = [r for r in rows if period in r.get("periods", [])]
    if month is not None:
        rows = [r for r in rows if r.get("month") == month]
    return rows


@router.get("/{figure}/customers")
async def figure_customers(
    figure: Figure,
    principal: Reader,
    analytics: AnalyticsDep,
    start: From = None,
    end: To = None,
    as_of: TimeParam = None,
    segment: SegmentParam = None,
    grain: Grain = "month",
    by: By = "period",
    horizon_days: Horizon = 365,
    cohort: Annotated[date | None, Query(description="retention: the cohort's first day")] = None,
    period: Annotated[int | None, Query(ge=0, le=10_000, description="retention: k")] = None,
    month: Annotated[str | None, Query(pattern=r"^\d{4}-\d{2}$", description="churn")] = None,
    cursor: Cursor = None,
    limit: Limit = 100,
) -> dict[str, Any]:
    """The customers behind the figure, each with its own numbers, by customer id. A
    cursor keeps the ``as_of`` of the first page, so pages never shift."""
    pinned, after = decode_cursor(cursor, datetime, str) if cursor is not None else (None, "")
    window = window_of(analytics, start, end, as_of, segment, pinned)
    answer = await _answer(
        analytics, principal.tenant_id, figure, window, grain, by, True, horizon_days
    )
    rows = [
        r for r in _matching(answer.customers, cohort, period, month) if r["customer_id"] > after
    ]
    page = rows[:limit]
    more = len(rows) > limit
    return {
        "figure": answer.figure,
        **_window_view(window),
        "items": page,
        "next_cursor": encode_cursor(window.as_of, page[-1]["customer_id"]) if more else None,
    }


def _csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    columns = list(dict.fromkeys(k for r in rows for k in r))
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(
            {k: json.dumps(v) if isinstance(v, list | dict) else v for k, v in row.items()}
        )
    return out.getvalue()


@router.get(
    "/{figure}/export",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}, "description": "the rows as CSV"}},
)
async def export_figure(
    figure: Figure,
    principal: Exporter,
    analytics: AnalyticsDep,
    start: From = None,
    end: To = None,
    as_of: TimeParam = None,
    segment: SegmentParam = None,
    grain: Grain = "month",
    by: By = "period",
    horizon_days: Horizon = 365,
    part: Annotated[Literal["table", "customers"], Query()] = "table",
) -> Response:
    """The figure's table, or the customers behind it, as CSV (managers and admins)."""
    window = window_of(analytics, start, end, as_of, segment)
    answer = await _answer(
        analytics, principal.tenant_id, figure, window, grain, by, part == "customers", horizon_days
    )
    rows = answer.table if part == "table" else answer.customers
    if part == "table" and not rows:
        rows = [
            {
                "figure": answer.figure,
                **{k: v for k, v in answer.summary.items() if not isinstance(v, dict)},
            }
        ]
    name = f"{figure}-{part}-{window.as_of.date().isoformat()}.csv"
    return Response(
        _csv(rows),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
