"""Segments and settings: ``PUT /api/v1/analytics/segments/{name}`` saves a filter;
``GET .../segments/{name}`` its member count (as of a time) and count history;
``GET .../segments/{name}/members`` its members, a page at a time; the built-in
segments (vip, growth, normal, new, at-risk, lost) are listed beside the saved ones.
``/settings`` holds the tenant's definitions (days to lost, spend bands)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import Path, Response
from pydantic import ConfigDict

from libs.events.catalog.analytics import AnalyticsSettings, SegmentFilter
from libs.platform.dependencies import IfMatch, decode_cursor, encode_cursor, etag_for, moment_query
from libs.platform.routing import ServiceRouter
from services.analytics.api.conventions import (
    SEGMENT_PATTERN,
    AnalyticsDep,
    Configurer,
    Cursor,
    Limit,
    Reader,
    SegmentWriter,
    TimeParam,
)
from services.analytics.domain.segments import BUILT_IN
from services.analytics.handlers import segments
from services.analytics.read_model import segment_list

router = ServiceRouter(prefix="/api/v1/analytics", tags=["analytics"])

SegmentName = Annotated[str, Path(pattern=SEGMENT_PATTERN, description="the segment's name")]


class SegmentBody(SegmentFilter):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SettingsBody(AnalyticsSettings):
    model_config = ConfigDict(extra="forbid", frozen=True)


@router.get("/segments")
async def list_segments(principal: Reader, analytics: AnalyticsDep) -> dict[str, Any]:
    async with analytics.engine.connect() as conn:
        saved = await segment_list.saved_segments(conn, principal.tenant_id)
    return {
        "items": [
            {"name": name, "built_in": True, "rule": rule} for name, (rule, _) in BUILT_IN.items()
        ]
        + [
            {"name": r.name, "built_in": False, "filter": r.filter, "version": r.version}
            for r in saved
        ]
    }


@router.put(
    "/segments/{name}",
    responses={201: {"description": "The segment was defined by this request"}},
)
async def put_segment(
    name: SegmentName,
    body: SegmentBody,
    principal: SegmentWriter,
    analytics: AnalyticsDep,
    response: Response,
    expected: IfMatch = None,
) -> dict[str, Any]:
    """Save the segment's filter (replacing it); who it holds now is announced at once."""
    rule = SegmentFilter.model_validate(body.model_dump())
    version, created = await segments.define_segment(
        analytics, principal.tenant_id, name, rule, principal.subject[:64], expected
    )
    response.status_code = 201 if created else 200
    response.headers["ETag"] = etag_for(version)
    async with analytics.engine.connect() as conn:
        count = len(await segment_list.members_of(conn, principal.tenant_id, name))
    return {
        "name": name,
        "filter": rule.model_dump(mode="json"),
        "version": version,
        "member_count": count,
    }


@router.get("/segments/{name}")
async def get_segment(
    name: SegmentName,
    principal: Reader,
    analytics: AnalyticsDep,
    as_of: TimeParam = None,
) -> dict[str, Any]:
    """The segment, how many customers it holds as of a time, and how its count moved."""
    when = moment_query("as_of", as_of, end_of_day=True) or analytics.clock()
    async with analytics.engine.connect() as conn:
        members = await segments.members_as_of(conn, analytics, principal.tenant_id, name, when)
        row = await segment_list.segment(conn, principal.tenant_id, name)
        history = await segment_list.count_history(conn, principal.tenant_id, name)
    return {
        "name": name,
        "built_in": name in BUILT_IN,
        "rule": BUILT_IN[name][0] if name in BUILT_IN else None,
        "filter": row.filter if row is not None else None,
        "version": row.version if row is not None else 0,
        "as_of": when.isoformat(),
        "member_count": len(members),
        "history": history,
    }


@router.get("/segments/{name}/members")
async def segment_members(
    name: SegmentName,
    principal: Reader,
    analytics: AnalyticsDep,
    as_of: TimeParam = None,
    cursor: Cursor = None,
    limit: Limit = 100,
) -> dict[str, Any]:
    """The segment's members as of a time, by customer id; the cursor keeps the time."""
    if cursor is not None:
        when, after = decode_cursor(cursor, datetime, str)
    else:
        when = moment_query("as_of", as_of, end_of_day=True) or analytics.clock()
        after = ""
    async with analytics.engine.connect() as conn:
        members = await segments.members_as_of(conn, analytics, principal.tenant_id, name, when)
    rest = [c for c in members if c > after]
    page = rest[:limit]
    return {
        "name": name,
        "as_of": when.isoformat(),
        "member_count": len(members),
        "items": [{"customer_id": c} for c in page],
        "next_cursor": encode_cursor(when, page[-1]) if len(rest) > limit else None,
    }


@router.get("/settings")
async def get_settings(
    principal: Reader, analytics: AnalyticsDep, response: Response
) -> dict[str, Any]:
    async with analytics.engine.connect() as conn:
        settings, version = await segment_list.settings_of(conn, principal.tenant_id)
    response.headers["ETag"] = etag_for(version)
    return settings.model_dump(mode="json")


@router.put("/settings")
async def put_settings(
    body: SettingsBody,
    principal: Configurer,
    analytics: AnalyticsDep,
    response: Response,
    expected: IfMatch = None,
) -> dict[str, Any]:
    """Replace the tenant's definitions (days to at risk and lost, new, spend bands)."""
    settings = AnalyticsSettings.model_validate(body.model_dump())
    saved, version = await segments.set_settings(
        analytics, principal.tenant_id, settings, principal.subject[:64], expected
    )
    response.headers["ETag"] = etag_for(version)
    return saved.model_dump(mode="json")
