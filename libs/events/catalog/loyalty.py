"""The published language of the loyalty service: ``crm.loyalty.*.v1``.

Points ledgers per customer, the tenant's programme rules, rewards and their stock.
A public contract like ``catalog.pipeline``: add fields with defaults; anything else
is a new version.

Conventions:

* Points are integers. Every event that changes a customer's balance is one ledger
  line; the balance is the sum of the lines (``PointsEarned.points`` adds,
  ``PointsClawedBack``/``PointsRedeemed``/``PointsExpired`` take away,
  ``PointsAdjusted`` and ``LedgerTransferred*`` carry their own sign).
* Earned points form a *lot* (``lot_id``) with its own expiry; spending and
  clawbacks say which lots they drew from (``draws``).
* A line caused by another service's event names it (``source_event_id``): the same
  source event never makes a second line.
* Money is an integer in the currency's minor unit, as in the pipeline's events.
* Loyalty events carry ids and amounts only, no personal data; the Kafka key is the
  customer id (a reward's definition is keyed by the reward id, the rules by
  ``"rules"``).
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from libs.events.catalog import DomainEvent, EventCatalog
from libs.platform.types import Instant

EarnReason = Literal["order", "check_in", "streak", "birthday", "referral", "survey", "campaign"]
# Where a refund's points come from when the order's own points were already spent.
ShortfallPolicy = Literal["negative_balance", "owed"]
TierChangeReason = Literal["order", "refund", "cancellation", "window", "rules", "merge"]


# Bounds that keep every points figure far inside a 64-bit integer.
MAX_AMOUNT = 10**15
MAX_MULTIPLIER = 1000
MAX_BONUS = 1_000_000


class Part(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class LotDraw(Part):
    """Points taken from (or given back to) one lot."""

    lot_id: str
    points: int


class Lot(Part):
    """A lot as it stands, when a ledger moves to another customer."""

    lot_id: str
    points: int
    earned_at: Instant
    expires_at: AwareDatetime | None = None


class TransferredOrder(Part):
    """An order a merged duplicate earned on: its refunds still claw back on the survivor."""

    order_id: str
    placed_at: Instant
    amount: int
    points: int
    lot_id: str
    refunded: int = 0
    clawed: int = 0
    forgiven: int = 0
    cancelled: bool = False


class TierRule(Part):
    name: str
    # Qualifying spend (minor units, net of refunds) in the rolling window.
    threshold: int = Field(ge=0, le=MAX_AMOUNT)
    # Points multiplier of orders placed while the customer holds the tier.
    multiplier: Decimal = Field(default=Decimal(1), ge=0, le=MAX_MULTIPLIER, decimal_places=4)


class StreakBonus(Part):
    days: int = Field(ge=2, le=366)
    points: int = Field(ge=1, le=MAX_BONUS)


class Campaign(Part):
    campaign_id: str
    name: str
    starts_at: Instant
    ends_at: Instant
    multiplier: Decimal = Field(default=Decimal(1), ge=0, le=MAX_MULTIPLIER, decimal_places=4)
    # Extra points per qualifying order placed inside the window.
    bonus_points: int = Field(default=0, ge=0, le=MAX_BONUS)


def default_tiers() -> list[TierRule]:
    return [
        TierRule(name="普通会员", threshold=0, multiplier=Decimal(1)),
        TierRule(name="silver", threshold=500_000, multiplier=Decimal("1.2")),
        TierRule(name="gold", threshold=2_000_000, multiplier=Decimal("1.5")),
        TierRule(name="platinum", threshold=5_000_000, multiplier=Decimal(2)),
    ]


class ProgramRules(Part):
    """A tenant's loyalty programme: how points are earned, kept and lost."""

    currency: str = "CNY"
    # ``points_per_unit`` points for every ``unit`` minor units of net order amount.
    points_per_unit: Decimal = Field(default=Decimal(1), ge=0, le=MAX_MULTIPLIER, decimal_places=4)
    unit: int = Field(default=100, ge=1, le=MAX_AMOUNT)
    # Points expire this many months after they were earned (None: never).
    expiry_months: int | None = Field(default=24, ge=1, le=1200)
    shortfall: ShortfallPolicy = "negative_balance"
    time_zone: str = "Asia/Shanghai"
    tiers: list[TierRule] = Field(default_factory=default_tiers)
    tier_window_months: int = Field(default=12, ge=1, le=120)
    # Days a customer keeps a tier after falling below its threshold (0: falls at once).
    downgrade_grace_days: int = Field(default=0, ge=0, le=366)
    check_in_points: int = Field(default=1, ge=0, le=MAX_BONUS)
    streak_bonuses: list[StreakBonus] = Field(default_factory=list)
    birthday_bonus: int = Field(default=0, ge=0, le=MAX_BONUS)
    referral_bonus: int = Field(default=0, ge=0, le=MAX_BONUS)
    survey_bonus: int = Field(default=0, ge=0, le=MAX_BONUS)
    campaigns: list[Campaign] = Field(default_factory=list)


# --- programme ---------------------------------------------------------------------


class LoyaltyRulesSet(DomainEvent, type_name="crm.loyalty.rules_set.v1"):
    """Tenant-level: the rules in force from ``effective_from`` on."""

    rules: ProgramRules
    effective_from: Instant
    by: str


class RewardDefined(DomainEvent, type_name="crm.loyalty.reward_defined.v1"):
    """Tenant-level: a reward's terms (a later definition replaces them)."""

    reward_id: str
    name: str
    cost: int = Field(ge=1, le=MAX_AMOUNT)
    # None: unlimited.
    stock: int | None = Field(default=None, ge=0, le=MAX_AMOUNT)
    valid_from: Instant | None = None
    valid_until: Instant | None = None
    active: bool = True
    by: str


class RewardStockTaken(DomainEvent, type_name="crm.loyalty.reward_stock_taken.v1"):
    reward_id: str
    redemption_id: str
    customer_id: str


class RewardStockReturned(DomainEvent, type_name="crm.loyalty.reward_stock_returned.v1"):
    reward_id: str
    redemption_id: str
    customer_id: str


# --- the ledger of one customer ------------------------------------------------------


class PointsEarned(DomainEvent, type_name="crm.loyalty.points_earned.v1"):
    """A new lot. For an order: its net amount and the rule applied (points may be 0)."""

    customer_id: str
    lot_id: str
    points: int
    reason: EarnReason
    source_event_id: str
    earned_at: Instant
    expires_at: AwareDatetime | None = None
    order_id: str | None = None
    order_amount: int | None = None
    currency: str | None = None
    multiplier: Decimal = Decimal(1)
    explanation: str = ""
    # A referral bonus: the customer whose first order earned it (decision 0040).
    referred_customer_id: str | None = None
    # A survey bonus: the survey answered.
    survey_id: str | None = None


class PointsClawedBack(DomainEvent, type_name="crm.loyalty.points_clawed_back.v1"):
    """A refund or cancellation takes back the points its order earned, in proportion.

    ``points`` leave the balance now (drawn from ``draws``, and below zero under the
    ``negative_balance`` policy); ``owed`` is recorded and recovered from later
    earnings (``owed`` policy); ``forgiven`` had already expired.
    """

    customer_id: str
    order_id: str
    source_event_id: str
    refund_id: str | None = None
    refunded_amount: int
    points: int
    owed: int = 0
    forgiven: int = 0
    draws: list[LotDraw] = Field(default_factory=list)
    explanation: str = ""


class OwedPointsRecovered(DomainEvent, type_name="crm.loyalty.owed_points_recovered.v1"):
    """Newly earned points pay back what an earlier clawback could not take."""

    customer_id: str
    lot_id: str
    points: int


class PointsRedeemed(DomainEvent, type_name="crm.loyalty.points_redeemed.v1"):
    """A redemption made: the reward's cost, oldest lots first."""

    customer_id: str
    redemption_id: str
    reward_id: str
    points: int
    draws: list[LotDraw]
    idempotency_key: str
    by: str


class RedemptionCancelled(DomainEvent, type_name="crm.loyalty.redemption_cancelled.v1"):
    """The redemption's points come back: to their lots, or as a new lot (``new_lot``)
    for points whose lot expired meanwhile."""

    customer_id: str
    redemption_id: str
    reward_id: str
    points: int
    restored: list[LotDraw] = Field(default_factory=list)
    new_lot: Lot | None = None
    reason: str = ""
    by: str


class PointsExpired(DomainEvent, type_name="crm.loyalty.points_expired.v1"):
    """What was left of one lot when it expired: once per lot."""

    customer_id: str
    lot_id: str
    points: int
    expired_at: Instant


class PointsAdjusted(DomainEvent, type_name="crm.loyalty.points_adjusted.v1"):
    """A manager's correction: positive adds a lot, negative draws oldest lots first."""

    customer_id: str
    adjustment_id: str
    points: int
    reason: str
    by: str
    adjusted_at: Instant
    draws: list[LotDraw] = Field(default_factory=list)
    expires_at: AwareDatetime | None = None


class TierChanged(DomainEvent, type_name="crm.loyalty.tier_changed.v1"):
    customer_id: str
    from_tier: str
    to_tier: str
    qualifying_spend: int
    reason: TierChangeReason
    changed_at: Instant


class TierAtRisk(DomainEvent, type_name="crm.loyalty.tier_at_risk.v1"):
    """Below the tier's threshold: the tier falls at ``downgrade_at`` unless regained."""

    customer_id: str
    tier: str
    qualifying_spend: int
    downgrade_at: AwareDatetime


class TierKept(DomainEvent, type_name="crm.loyalty.tier_kept.v1"):
    """Back above the threshold within the grace period: no downgrade."""

    customer_id: str
    tier: str
    qualifying_spend: int


class CheckedIn(DomainEvent, type_name="crm.loyalty.checked_in.v1"):
    """A check-in on ``day`` (the tenant's calendar); points come as PointsEarned."""

    customer_id: str
    day: date
    streak: int


class Referral(Part):
    """Who referred the customer, and when contacts recorded it."""

    referrer_id: str
    referred_at: Instant


class ReferralRecorded(DomainEvent, type_name="crm.loyalty.referral_recorded.v1"):
    """On the referred customer's ledger: its first order may earn ``referrer_id`` the
    tenant's referral bonus. ``source_event_id``: contacts' CustomerReferred."""

    customer_id: str
    referrer_id: str
    referred_at: Instant
    source_event_id: str


class ReferralQualified(DomainEvent, type_name="crm.loyalty.referral_qualified.v1"):
    """The referred customer's first order was placed after the referral: the referrer
    earns ``points`` (a PointsEarned on the referrer's ledger, source
    ``referral:<customer_id>``). Settles the referral: once per referred customer."""

    customer_id: str
    referrer_id: str
    order_id: str
    points: int
    source_event_id: str


class ReferralLapsed(DomainEvent, type_name="crm.loyalty.referral_lapsed.v1"):
    """The referred customer had ordered before the referral was recorded: no bonus,
    ever. Settles the referral."""

    customer_id: str
    referrer_id: str
    order_id: str
    reason: str


class LedgerTransferredOut(DomainEvent, type_name="crm.loyalty.ledger_transferred_out.v1"):
    """A merged duplicate's ledger moves to the survivor: its balance leaves here."""

    customer_id: str
    survivor_id: str
    source_event_id: str
    points: int
    lots: list[Lot] = Field(default_factory=list)
    deficit: int = 0
    owed: int = 0


class LedgerTransferredIn(DomainEvent, type_name="crm.loyalty.ledger_transferred_in.v1"):
    """The survivor takes over the duplicate's lots, deficit, debt and orders, and the
    source events it has seen (a redelivered one must not earn on the survivor)."""

    customer_id: str
    duplicate_id: str
    source_event_id: str
    points: int
    lots: list[Lot] = Field(default_factory=list)
    deficit: int = 0
    owed: int = 0
    orders: list[TransferredOrder] = Field(default_factory=list)
    sources: list[str] = Field(default_factory=list)
    # The duplicate's referral not yet settled (it had no order): the survivor's first
    # order may still earn it, unless the survivor has a referral of its own.
    referral: Referral | None = None


catalog = EventCatalog(
    [
        LoyaltyRulesSet,
        RewardDefined,
        RewardStockTaken,
        RewardStockReturned,
        PointsEarned,
        PointsClawedBack,
        OwedPointsRecovered,
        PointsRedeemed,
        RedemptionCancelled,
        PointsExpired,
        PointsAdjusted,
        TierChanged,
        TierAtRisk,
        TierKept,
        CheckedIn,
        ReferralRecorded,
        ReferralQualified,
        ReferralLapsed,
        LedgerTransferredOut,
        LedgerTransferredIn,
    ],
    schema_base_url="https://schemas.crm.example/events",
)
