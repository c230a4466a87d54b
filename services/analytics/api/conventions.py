"""What every analytics endpoint shares: the caller, the wiring, the window parameters
(``from``, ``to``, ``as_of``, ``segment``) and cursors that keep their ``as_of``.

A date (``2026-03-01``) as ``from`` means the start of that day (UTC); as ``to`` or
``as_of``, its end. A time needs its offset. ``to`` defaults to ``as_of``, which
defaults to now.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Depends, Query, Request

from libs.auth import Principal, require
from libs.platform.dependencies import moment_query
from libs.platform.errors import Unprocessable
from services.analytics.handlers import Analytics, Window

Reader = Annotated[Principal, Depends(require("customers:read"))]
Exporter = Annotated[Principal, Depends(require("analytics:export"))]
SegmentWriter = Annotated[Principal, Depends(require("segments:write"))]
Configurer = Annotated[Principal, Depends(require("churn:configure"))]

SEGMENT_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
TimeParam = Annotated[
    str | None, Query(max_length=40, description="a date (YYYY-MM-DD, UTC) or an ISO 8601 time")
]
SegmentParam = Annotated[
    str | None, Query(pattern=SEGMENT_PATTERN, description="a saved or built-in segment")
]
Limit = Annotated[int, Query(ge=1, le=1000)]
Cursor = Annotated[str | None, Query(max_length=300)]


async def analytics_of(request: Request) -> Analytics:
    analytics: Analytics = request.app.state.analytics
    return analytics


AnalyticsDep = Annotated[Analytics, Depends(analytics_of)]


def window_of(
    analytics: Analytics,
    start: str | None,
    end: str | None,
    as_of: str | None,
    segment: str | None,
    pinned: datetime | None = None,
) -> Window:
    when = pinned or moment_query("as_of", as_of, end_of_day=True) or analytics.clock()
    begin = moment_query("from", start, end_of_day=False)
    until = moment_query("to", end, end_of_day=True) or when
    if begin is not None and begin > until:
        raise Unprocessable("from", "after the window's end")
    return Window(begin, until, when, segment)
