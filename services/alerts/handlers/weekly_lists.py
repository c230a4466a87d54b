"""The weekly risk lists: per owner, the new, rising and still-open risks of an ISO week,
read on demand and published once per tenant and week."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncConnection

from libs.events.catalog.alerts import WeeklyRiskListPublished
from libs.events.store import ConcurrencyConflict, NewEvent
from services.alerts.domain import weekly
from services.alerts.domain.risk import value_key
from services.alerts.handlers.context import Alerts
from services.alerts.handlers.ranking import risks_as_of
from services.alerts.read_model import churn_facts
from services.alerts.read_model.churn_facts import RankOrder

# A tenant's weekly lists: ``#weekly/2026-W49``, one stream per week.
WEEKLY_STREAM = "#weekly"


async def weekly_lists_of(
    conn: AsyncConnection,
    tenant_id: str,
    week: str,
    now: datetime,
    owner_id: str | None = None,
    order: RankOrder = "revenue_at_risk",
) -> list[weekly.OwnerList]:
    """The week's lists per owner, in the tenant's time zone (``weekly.InvalidWeek`` for a
    malformed week or one not begun yet), each in ``order``."""
    rules, _ = await churn_facts.rules_of(conn, tenant_id)
    before, end = weekly.week_bounds(week, now, ZoneInfo(rules.time_zone))
    if before >= now:
        raise weekly.InvalidWeek("the week has not begun yet")
    at_start = await risks_as_of(conn, tenant_id, before, owner_id)
    at_end = await risks_as_of(conn, tenant_id, end, owner_id)
    if order == "revenue_at_risk":
        at_end.sort(key=lambda r: value_key(r.risk))
    return weekly.weekly_lists(
        {r.risk.customer_id: r.risk for r in at_start}, [(r.risk, r.owner_id) for r in at_end]
    )


async def publish_weekly_lists(alerts: Alerts) -> int:
    """Each tenant's list of the week just ended, once its Monday 09:00 (the tenant's
    time zone) has come: one ``WeeklyRiskListPublished`` per owner on the tenant's
    ``#weekly/<week>`` stream. That stream is new only once, so a list is published
    once per tenant and week, whichever process or restart gets there first."""
    now = alerts.clock()
    async with alerts.engine.connect() as conn:
        tenants = await churn_facts.tenants(conn)
    published = 0
    for tenant_id in tenants:
        try:
            published += await _publish_weekly_list(alerts, tenant_id, now)
        except ConcurrencyConflict:
            continue  # another process published it a moment ago
    alerts.appended(published)
    return published


async def _publish_weekly_list(alerts: Alerts, tenant_id: str, now: datetime) -> int:
    # Most checks find the list out already: read without taking a write transaction.
    async with alerts.engine.connect() as conn:
        rules, _ = await churn_facts.rules_of(conn, tenant_id)
        week, _ = weekly.list_due(now, ZoneInfo(rules.time_zone))
        stream_id = f"{WEEKLY_STREAM}/{week}"
        if await alerts.store.read_stream(tenant_id, stream_id, conn=conn):
            return 0
    async with alerts.engine.begin() as conn:
        lists = await weekly_lists_of(conn, tenant_id, week, now)
        events = [
            WeeklyRiskListPublished(
                week=week,
                owner_id=o.owner_id,
                new=[r.customer_id for r in o.new],
                rising=[r.customer_id for r in o.rising],
                still_open=[r.customer_id for r in o.still_open],
                sorted_by="revenue_at_risk",
            )
            for o in lists
        ]
        # Nobody at risk: said so, once.
        events = events or [WeeklyRiskListPublished(week=week, sorted_by="revenue_at_risk")]
        await alerts.store.append(
            tenant_id,
            stream_id,
            0,
            [
                NewEvent.from_domain(e, partition_key=f"weekly/{e.owner_id or ''}", occurred_at=now)
                for e in events
            ],
            conn=conn,
        )
    return len(events)
