"""What may be asked of a customer's PointsLedger: by an HTTP caller or by another
service's event. Validation of what a caller sends happens in ``api.py``; these are
the decided-upon shapes the domain receives."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from libs.events.catalog.loyalty import EarnReason


@dataclass(frozen=True, slots=True)
class EarnForOrder:
    source_event_id: str
    order_id: str
    amount: int
    currency: str
    placed_at: datetime


@dataclass(frozen=True, slots=True)
class ClawBackRefund:
    source_event_id: str
    order_id: str
    refund_id: str
    amount: int


@dataclass(frozen=True, slots=True)
class ClawBackCancellation:
    source_event_id: str
    order_id: str


@dataclass(frozen=True, slots=True)
class EarnBonus:
    """Birthday, referral: a fixed number of points for one source event."""

    source_event_id: str
    reason: EarnReason
    points: int
    explanation: str = ""
    # Names the lot (``<customer>/<reason>:<key>``): one bonus per key.
    key: str | None = None
    referred_customer_id: str | None = None


@dataclass(frozen=True, slots=True)
class EarnSurveyBonus:
    """A survey answered (CSAT or NPS): the tenant's survey bonus, once per survey."""

    source_event_id: str
    survey_id: str
    kind: str
    answered_at: datetime


@dataclass(frozen=True, slots=True)
class RecordReferral:
    """Contacts recorded who referred this customer (decision 0040)."""

    source_event_id: str
    referrer_id: str
    referred_at: datetime


@dataclass(frozen=True, slots=True)
class RedeemReward:
    redemption_id: str
    idempotency_key: str
    reward_id: str
    by: str


@dataclass(frozen=True, slots=True)
class CancelRedemption:
    redemption_id: str
    reason: str
    by: str


@dataclass(frozen=True, slots=True)
class AdjustPoints:
    adjustment_id: str
    points: int
    reason: str
    by: str


@dataclass(frozen=True, slots=True)
class CheckIn:
    pass


@dataclass(frozen=True, slots=True)
class ExpirePoints:
    """Housekeeping: expire due lots and let tiers fall as orders leave the window."""


@dataclass(frozen=True, slots=True)
class TransferLedgerOut:
    source_event_id: str
    survivor_id: str


LedgerCommand = (
    EarnForOrder
    | ClawBackRefund
    | ClawBackCancellation
    | EarnBonus
    | EarnSurveyBonus
    | RecordReferral
    | RedeemReward
    | CancelRedemption
    | AdjustPoints
    | CheckIn
    | ExpirePoints
    | TransferLedgerOut
)
