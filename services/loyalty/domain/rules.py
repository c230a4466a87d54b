"""A tenant's programme rules over time, and the arithmetic they imply (pure).

Rules change; an order earns by the rules in force when it was placed, so a
migrated order with a historic ``placed_at`` earns as it would have then. Before
the first rules a tenant set, its first rules apply (the programme as first
defined); a tenant that never set any runs on the defaults.
"""

from __future__ import annotations

import bisect
import calendar
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import ROUND_FLOOR, Decimal

from libs.events.catalog.loyalty import LoyaltyRulesSet, ProgramRules, TierRule


def add_months(at: datetime, months: int) -> datetime:
    """The same wall-clock moment ``months`` later; the 31st becomes the month's last day."""
    index = at.month - 1 + months
    year, month = at.year + index // 12, index % 12 + 1
    day = min(at.day, calendar.monthrange(year, month)[1])
    return at.replace(year=year, month=month, day=day)


@dataclass(frozen=True, slots=True)
class RulesBook:
    """Every version of a tenant's rules, by the moment it took effect."""

    versions: tuple[tuple[datetime, ProgramRules], ...] = ()
    version: int = 0  # the rules stream's version (If-Match on PUT)
    _starts: tuple[datetime, ...] = field(default=(), repr=False)

    @classmethod
    def of(cls, events: Iterable[LoyaltyRulesSet], version: int = 0) -> RulesBook:
        versions = tuple(sorted(((e.effective_from, e.rules) for e in events), key=lambda v: v[0]))
        return cls(versions, version, tuple(v[0] for v in versions))

    def at(self, moment: datetime) -> ProgramRules:
        if not self.versions:
            return ProgramRules()
        index = bisect.bisect_right(self._starts, moment) - 1
        return self.versions[max(index, 0)][1]

    @property
    def current(self) -> ProgramRules:
        return self.versions[-1][1] if self.versions else ProgramRules()


def expiry_of(rules: ProgramRules, earned_at: datetime) -> datetime | None:
    return None if rules.expiry_months is None else add_months(earned_at, rules.expiry_months)


def tier_for(rules: ProgramRules, spend: int) -> TierRule:
    """The highest tier whose threshold the spend reaches (the lowest tier otherwise)."""
    tiers = sorted(rules.tiers, key=lambda t: t.threshold)
    reached = [t for t in tiers if t.threshold <= spend]
    return reached[-1] if reached else tiers[0]


def next_tier(rules: ProgramRules, spend: int) -> TierRule | None:
    above = sorted((t for t in rules.tiers if t.threshold > spend), key=lambda t: t.threshold)
    return above[0] if above else None


@dataclass(frozen=True, slots=True)
class OrderEarning:
    points: int
    multiplier: Decimal
    campaign_bonus: int
    explanation: str


def order_points(
    rules: ProgramRules, amount: int, currency: str, tier: TierRule, placed_at: datetime
) -> OrderEarning:
    """Points for an order of ``amount`` minor units placed at ``placed_at`` by a
    customer holding ``tier``: whole points, rounded down."""
    if currency != rules.currency:
        return OrderEarning(
            0, Decimal(0), 0, f"order in {currency}; the programme counts {rules.currency}"
        )
    multiplier = tier.multiplier
    bonus = 0
    campaigns = [c for c in rules.campaigns if c.starts_at <= placed_at < c.ends_at]
    for campaign in campaigns:
        multiplier *= campaign.multiplier
        bonus += campaign.bonus_points
    base = Decimal(max(amount, 0)) * rules.points_per_unit / Decimal(rules.unit)
    points = int((base * multiplier).to_integral_value(rounding=ROUND_FLOOR))
    explanation = (
        f"{amount} {currency} minor units at {rules.points_per_unit} per {rules.unit}"
        f" × {tier.name} {tier.multiplier}"
    )
    if campaigns:
        explanation += "; campaigns " + ", ".join(c.campaign_id for c in campaigns)
    return OrderEarning(points + (bonus if amount > 0 else 0), multiplier, bonus, explanation)


def is_birthday(month: int, day: int, today: date) -> bool:
    """Born on 29 February: the 28th in years without one."""
    if (month, day) == (today.month, today.day):
        return True
    return (
        (month, day) == (2, 29)
        and (today.month, today.day) == (2, 28)
        and not (calendar.isleap(today.year))
    )
