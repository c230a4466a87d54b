"""The published language of the analytics service: ``crm.analytics.*.v1``.

Segments are saved, named filters over a tenant's customers; a customer entering or
leaving one (a saved segment or a built-in one: ``vip``, ``growth``, ``normal``,
``new``, ``at-risk``, ``lost``) is an event, so marketing automation and other
systems can act on it. A public contract like ``catalog.alerts``: add fields with
defaults; anything else is a new version.

Conventions:

* Membership events are keyed by the customer (``customer_id``); a segment's
  definition by ``"segment:<name>"``; the tenant's settings by ``"settings"``.
* ``as_of`` is the business time the membership was evaluated for.
* No personal data: ids, names of segments and figures only.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from libs.events.catalog import DomainEvent, EventCatalog
from libs.platform.types import Instant

CustomerKind = Literal["person", "company"]
RiskLevel = Literal["none", "low", "medium", "high"]
NpsGroup = Literal["promoter", "passive", "detractor"]
# Text a filter compares with: PostgreSQL keeps no NUL character in text or JSON, so
# one is refused here (a 422 naming the field), not by the database (a 500).
FilterText = Annotated[str, StringConstraints(max_length=200, pattern=r"^[^\x00]*$")]
# A custom field's value as contacts stores it (text and choice as str).
AttributeValue = FilterText | int | float

MAX_AMOUNT = 10**15


class _Part(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class SegmentFilter(_Part):
    """Which customers a segment holds: every condition given must hold (an empty
    list or None means "any"). Amounts are minor units, net of refunds; order figures
    count orders not cancelled; all as of the time the segment is evaluated for."""

    # The customer carries every one of ``tags_all`` and at least one of ``tags_any``.
    tags_all: list[FilterText] = Field(default_factory=list, max_length=50)
    tags_any: list[FilterText] = Field(default_factory=list, max_length=50)
    kinds: list[CustomerKind] = Field(default_factory=list)
    # "none" in ``owner_ids`` matches customers nobody owns.
    owner_ids: list[FilterText] = Field(default_factory=list, max_length=200)
    loyalty_tiers: list[FilterText] = Field(default_factory=list, max_length=50)
    # The level the alerts service last published for the customer ("none": never).
    churn_levels: list[RiskLevel] = Field(default_factory=list)
    nps_groups: list[NpsGroup] = Field(default_factory=list)
    total_spent_min: int | None = Field(default=None, ge=0, le=MAX_AMOUNT)
    total_spent_max: int | None = Field(default=None, ge=0, le=MAX_AMOUNT)
    order_count_min: int | None = Field(default=None, ge=0, le=10**9)
    order_count_max: int | None = Field(default=None, ge=0, le=10**9)
    # The last order was placed before / at or after this time (a customer who never
    # ordered matches neither).
    last_order_before: Instant | None = None
    last_order_after: Instant | None = None
    # Custom fields: each named attribute equals the value given.
    attributes: dict[FilterText, AttributeValue] = Field(default_factory=dict, max_length=20)


class AnalyticsSettings(_Part):
    """A tenant's definitions behind the figures and the built-in segments."""

    # A customer is lost once it goes this many days without an order.
    lost_after_days: int = Field(default=90, ge=1, le=3650)
    # ... and at risk from this many days (fewer than ``lost_after_days``).
    at_risk_after_days: int = Field(default=60, ge=1, le=3650)
    # New: registered within this many days.
    new_days: int = Field(default=30, ge=1, le=3650)
    # Spend bands of the built-in VIP / growth / normal segments (lifetime net spend,
    # minor units): VIP from ``vip_spend_from``, growth from ``growth_spend_from``.
    vip_spend_from: int = Field(default=1_000_000, ge=1, le=MAX_AMOUNT)
    growth_spend_from: int = Field(default=200_000, ge=1, le=MAX_AMOUNT)


class AnalyticsSettingsSet(DomainEvent, type_name="crm.analytics.settings_set.v1"):
    """Tenant-level: the definitions in force from now on (key: ``"settings"``)."""

    settings: AnalyticsSettings
    by: str


class SegmentDefined(DomainEvent, type_name="crm.analytics.segment_defined.v1"):
    """A saved segment was created or its filter replaced (key: ``"segment:<name>"``)."""

    segment: str
    filter: SegmentFilter
    by: str


class CustomerEnteredSegment(DomainEvent, type_name="crm.analytics.customer_entered_segment.v1"):
    segment: str
    customer_id: str
    as_of: Instant


class CustomerLeftSegment(DomainEvent, type_name="crm.analytics.customer_left_segment.v1"):
    segment: str
    customer_id: str
    as_of: Instant


catalog = EventCatalog(
    [AnalyticsSettingsSet, SegmentDefined, CustomerEnteredSegment, CustomerLeftSegment],
    schema_base_url="https://schemas.crm.example/events",
)
