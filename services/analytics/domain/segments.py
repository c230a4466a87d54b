"""Who is in a segment as of a time: a saved filter or a built-in rule, applied to a
customer's profile (as it stood then) and its sales (as known then)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from libs.events.catalog.analytics import AnalyticsSettings, AttributeValue, SegmentFilter
from services.analytics.domain.sales import CustomerSales

NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


@dataclass(frozen=True, slots=True)
class Profile:
    """A customer as the other services had described it at one time."""

    customer_id: str
    registered_at: datetime | None = None
    kind: str | None = None
    owner_id: str | None = None
    tags: frozenset[str] = frozenset()
    loyalty_tier: str | None = None
    churn_level: str = "none"
    nps_group: str | None = None
    attributes: Mapping[str, AttributeValue] = field(default_factory=dict)


NO_SALES = CustomerSales("", 0, 0, 0, 0, None, None)


def matches(rule: SegmentFilter, profile: Profile, sales: CustomerSales) -> bool:
    if rule.tags_all and not set(rule.tags_all) <= profile.tags:
        return False
    if rule.tags_any and not set(rule.tags_any) & profile.tags:
        return False
    if rule.kinds and profile.kind not in rule.kinds:
        return False
    if rule.owner_ids and (profile.owner_id or "none") not in rule.owner_ids:
        return False
    if rule.loyalty_tiers and profile.loyalty_tier not in rule.loyalty_tiers:
        return False
    if rule.churn_levels and profile.churn_level not in rule.churn_levels:
        return False
    if rule.nps_groups and profile.nps_group not in rule.nps_groups:
        return False
    spent, orders = sales.lifetime_net, sales.lifetime_orders
    if rule.total_spent_min is not None and spent < rule.total_spent_min:
        return False
    if rule.total_spent_max is not None and spent > rule.total_spent_max:
        return False
    if rule.order_count_min is not None and orders < rule.order_count_min:
        return False
    if rule.order_count_max is not None and orders > rule.order_count_max:
        return False
    last = sales.last_order_at
    if rule.last_order_before is not None and (last is None or last >= rule.last_order_before):
        return False
    if rule.last_order_after is not None and (last is None or last < rule.last_order_after):
        return False
    return all(profile.attributes.get(k) == v for k, v in rule.attributes.items())


Rule = Callable[[Profile, CustomerSales, AnalyticsSettings, datetime], bool]


def _quiet(sales: CustomerSales, as_of: datetime) -> timedelta | None:
    return as_of - sales.last_order_at if sales.last_order_at is not None else None


def _at_risk(p: Profile, s: CustomerSales, settings: AnalyticsSettings, as_of: datetime) -> bool:
    quiet = _quiet(s, as_of)
    return quiet is not None and (
        timedelta(days=settings.at_risk_after_days)
        <= quiet
        < timedelta(days=settings.lost_after_days)
    )


def _lost(p: Profile, s: CustomerSales, settings: AnalyticsSettings, as_of: datetime) -> bool:
    quiet = _quiet(s, as_of)
    return quiet is not None and quiet >= timedelta(days=settings.lost_after_days)


def _new(p: Profile, s: CustomerSales, settings: AnalyticsSettings, as_of: datetime) -> bool:
    return p.registered_at is not None and as_of - p.registered_at < timedelta(
        days=settings.new_days
    )


BUILT_IN: dict[str, tuple[str, Rule]] = {
    "vip": (
        "lifetime net spend at or above the tenant's vip_spend_from",
        lambda p, s, settings, _: s.lifetime_net >= settings.vip_spend_from,
    ),
    "growth": (
        "lifetime net spend from growth_spend_from up to vip_spend_from",
        lambda p, s, settings, _: (
            settings.growth_spend_from <= s.lifetime_net < settings.vip_spend_from
        ),
    ),
    "normal": (
        "bought at least once, lifetime net spend below growth_spend_from",
        lambda p, s, settings, _: (
            s.lifetime_orders > 0 and s.lifetime_net < settings.growth_spend_from
        ),
    ),
    "new": ("registered within the tenant's new_days", _new),
    "at-risk": (
        "last order between at_risk_after_days and lost_after_days ago",
        _at_risk,
    ),
    "lost": ("last order lost_after_days ago or longer", _lost),
}


# What each built-in reads: the spend bands and silence read sales only; "new" reads
# the registration only (no attribute history, no orders).
BUILT_IN_NEEDS: dict[str, tuple[bool, bool]] = {
    "vip": (False, True),
    "growth": (False, True),
    "normal": (False, True),
    "new": (False, False),
    "at-risk": (False, True),
    "lost": (False, True),
}


def needs(segment: str | SegmentFilter) -> tuple[bool, bool]:
    """Whether evaluating the segment reads (profile attributes, sales)."""
    if isinstance(segment, str):
        return BUILT_IN_NEEDS[segment]
    sales_fields = (
        "total_spent_min",
        "total_spent_max",
        "order_count_min",
        "order_count_max",
        "last_order_before",
        "last_order_after",
    )
    profile_fields = (
        "tags_all",
        "tags_any",
        "kinds",
        "owner_ids",
        "loyalty_tiers",
        "churn_levels",
        "nps_groups",
        "attributes",
    )
    return (
        any(getattr(segment, f) for f in profile_fields),
        any(getattr(segment, f) is not None for f in sales_fields),
    )


def member(
    segment: str | SegmentFilter,
    profile: Profile,
    sales: CustomerSales | None,
    settings: AnalyticsSettings,
    as_of: datetime,
) -> bool:
    """Whether the customer is in the segment (a built-in's name, or a saved filter)."""
    known = sales or NO_SALES
    if isinstance(segment, str):
        return BUILT_IN[segment][1](profile, known, settings, as_of)
    return matches(segment, profile, known)


@dataclass(frozen=True, slots=True)
class MembershipChange:
    entered: list[str]
    left: list[str]


def changes(before: set[str], now: set[str]) -> MembershipChange:
    return MembershipChange(sorted(now - before), sorted(before - now))
