"""Segments: defining one, who is in one as of a time, and announcing who entered or
left since the last evaluation (``CustomerEnteredSegment`` / ``CustomerLeftSegment``,
appended to the segment's stream and published by the outbox relay).

Membership is evaluated as of the clock's now when a segment is defined, and by the
sweep (time alone moves customers into "at-risk" or "lost"); the members stored are
what was last announced, so each entry and each exit is announced once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from libs.events.catalog import DomainEvent
from libs.events.catalog.analytics import (
    AnalyticsSettings,
    AnalyticsSettingsSet,
    CustomerEnteredSegment,
    CustomerLeftSegment,
    SegmentDefined,
    SegmentFilter,
)
from libs.events.store import NewEvent
from libs.platform.errors import Conflict, NotFound, PreconditionFailed, Unprocessable
from services.analytics.domain.sales import CustomerSales
from services.analytics.domain.segments import BUILT_IN, Profile, changes, member, needs
from services.analytics.handlers import Analytics, Window
from services.analytics.read_model import queries, segment_list
from services.analytics.read_model.tables import Tables

SETTINGS_STREAM = "#settings"


def stream_of(name: str) -> str:
    return f"#segment:{name}"


Rule = str | SegmentFilter


@dataclass(frozen=True, slots=True)
class Customers:
    """The tenant's customers as of a time: profiles and lifetime sales."""

    as_of: datetime
    profiles: dict[str, Profile]
    sales: dict[str, CustomerSales]

    def members(self, rule: Rule, settings: AnalyticsSettings) -> set[str]:
        return {
            customer_id
            for customer_id, profile in self.profiles.items()
            if member(rule, profile, self.sales.get(customer_id), settings, self.as_of)
        }


async def customers_as_of(
    conn: AsyncConnection,
    t: Tables,
    tenant_id: str,
    as_of: datetime,
    *,
    attributes: bool = True,
    sales: bool = True,
) -> Customers:
    """The tenant's customers; ``attributes``/``sales`` False skip what a rule never reads."""
    profiles = await queries.profiles(conn, t, tenant_id, as_of, attributes=attributes)
    known = await queries.customer_sales(conn, t, tenant_id, as_of, None, as_of) if sales else {}
    return Customers(as_of, profiles, known)


async def rule_of(conn: AsyncConnection, tenant_id: str, name: str) -> Rule:
    if name in BUILT_IN:
        return name
    row = await segment_list.segment(conn, tenant_id, name)
    rule = segment_list.filter_of(row) if row is not None else None
    if rule is None:
        raise NotFound(f"segment {name} not found")
    return rule


async def members_as_of(
    conn: AsyncConnection, analytics: Analytics, tenant_id: str, name: str, as_of: datetime
) -> list[str]:
    rule = await rule_of(conn, tenant_id, name)
    settings, _ = await segment_list.settings_of(conn, tenant_id)
    t = await analytics.tables(conn)
    attributes, sales = needs(rule)
    customers = await customers_as_of(conn, t, tenant_id, as_of, attributes=attributes, sales=sales)
    return sorted(customers.members(rule, settings))


async def population(
    conn: AsyncConnection, analytics: Analytics, tenant_id: str, window: Window
) -> set[str] | None:
    """The customers a figure is restricted to (None: every customer)."""
    if window.segment is None:
        return None
    return set(await members_as_of(conn, analytics, tenant_id, window.segment, window.as_of))


def check_settings(settings: AnalyticsSettings) -> AnalyticsSettings:
    if settings.at_risk_after_days >= settings.lost_after_days:
        raise Unprocessable("at_risk_after_days", "must be fewer than lost_after_days")
    if settings.growth_spend_from >= settings.vip_spend_from:
        raise Unprocessable("growth_spend_from", "must be below vip_spend_from")
    return settings


async def set_settings(
    analytics: Analytics,
    tenant_id: str,
    settings: AnalyticsSettings,
    by: str,
    expected: int | None,
) -> tuple[AnalyticsSettings, int]:
    checked = check_settings(settings)

    async def attempt() -> int:
        now = analytics.clock()
        async with analytics.engine.begin() as conn:
            _, version = await segment_list.settings_of(conn, tenant_id)
            if expected is not None and expected != version:
                raise PreconditionFailed("the settings were changed meanwhile", version=version)
            new = await analytics.store.append(
                tenant_id,
                SETTINGS_STREAM,
                version,
                [
                    NewEvent.from_domain(
                        AnalyticsSettingsSet(settings=checked, by=by),
                        partition_key="settings",
                        occurred_at=now,
                    )
                ],
                conn=conn,
            )
            await segment_list.save_settings(conn, tenant_id, checked, new, now)
        return new

    new = await analytics.retrying(SETTINGS_STREAM, expected, attempt)
    analytics.appended(1)
    return checked, new


async def define_segment(
    analytics: Analytics,
    tenant_id: str,
    name: str,
    rule: SegmentFilter,
    by: str,
    expected: int | None,
) -> tuple[int, bool]:
    """Save the segment's filter; its version and whether it is new. Who it holds now
    is evaluated (and announced) at once."""
    if name in BUILT_IN:
        raise Conflict(f"{name} is a built-in segment and cannot be redefined", segment=name)

    async def attempt() -> tuple[int, bool]:
        now = analytics.clock()
        async with analytics.engine.begin() as conn:
            row = await segment_list.segment(conn, tenant_id, name, lock=True)
            version = int(row.version) if row is not None else 0
            if expected is not None and expected != version:
                raise PreconditionFailed("the segment was changed meanwhile", version=version)
            new = await analytics.store.append(
                tenant_id,
                stream_of(name),
                version,
                [
                    NewEvent.from_domain(
                        SegmentDefined(segment=name, filter=rule, by=by),
                        partition_key=f"segment:{name}",
                        occurred_at=now,
                    )
                ],
                conn=conn,
            )
            await segment_list.save_segment(conn, tenant_id, name, rule, new, now, by)
        return new, row is None

    # Two first definitions of one name race on the segment's row (a unique key) or
    # its stream: the later is decided again as a redefinition.
    new, created = await analytics.retrying(stream_of(name), expected, attempt)
    analytics.appended(1)
    await refresh(analytics, tenant_id, [name])
    async with analytics.engine.connect() as conn:
        saved = await segment_list.segment(conn, tenant_id, name)
    return (int(saved.version) if saved is not None else new), created


async def refresh(analytics: Analytics, tenant_id: str, names: list[str] | None = None) -> int:
    """Evaluate the segments (every one: built-in and saved) as of now and announce who
    entered and who left since the last evaluation; the number of events appended."""
    now = analytics.clock()
    appended = 0
    async with analytics.engine.connect() as conn:
        t = await analytics.tables(conn)
        settings, _ = await segment_list.settings_of(conn, tenant_id)
        customers = await customers_as_of(conn, t, tenant_id, now)
        if names is None:
            names = [
                *BUILT_IN,
                *(r.name for r in await segment_list.saved_segments(conn, tenant_id)),
            ]
    for name in names:
        async with analytics.engine.begin() as conn:
            row = await segment_list.segment(conn, tenant_id, name, lock=True)
            rule: Rule | None = (
                name
                if name in BUILT_IN
                else (segment_list.filter_of(row) if row is not None else None)
            )
            if rule is None:
                continue
            now_in = customers.members(rule, settings)
            moved = changes(await segment_list.members_of(conn, tenant_id, name), now_in)
            if not moved.entered and not moved.left:
                continue
            news: list[tuple[str, DomainEvent]] = [
                (c, CustomerEnteredSegment(segment=name, customer_id=c, as_of=now))
                for c in moved.entered
            ] + [
                (c, CustomerLeftSegment(segment=name, customer_id=c, as_of=now)) for c in moved.left
            ]
            version = int(row.version) if row is not None else 0
            new = await analytics.store.append(
                tenant_id,
                stream_of(name),
                version,
                [NewEvent.from_domain(e, partition_key=c, occurred_at=now) for c, e in news],
                conn=conn,
            )
            await segment_list.save_segment(
                conn,
                tenant_id,
                name,
                rule if isinstance(rule, SegmentFilter) else None,
                new,
                now,
                row.updated_by if row is not None else None,
            )
            await segment_list.record_changes(
                conn, tenant_id, name, moved.entered, moved.left, len(now_in), now
            )
            appended += len(news)
    analytics.appended(appended)
    return appended


async def sweep(analytics: Analytics) -> int:
    """Every tenant's segments as of now: time alone moves customers (into "lost")."""
    async with analytics.engine.connect() as conn:
        t = await analytics.tables(conn)
        tenants = await queries.tenants(conn, t)
    appended = 0
    for tenant_id in tenants:
        appended += await refresh(analytics, tenant_id)
    return appended
