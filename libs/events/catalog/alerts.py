"""The published language of the alerts service: ``crm.alerts.*.v1``.

Churn warnings that explain themselves: a customer's risk level, the score behind it
and each reason (the signal, its contribution, a sentence a sales rep understands
and the ids of the events that triggered it); what is done about it (alerts,
follow-up tasks, reminders, notifications). A public contract like
``catalog.pipeline``: add fields with defaults; anything else is a new version.

Conventions:

* Every event about a customer carries ``customer_id`` (also the Kafka key);
  tenant-level events (rules, weekly lists) are keyed by what they name.
* ``as_of`` is the business time the score was computed for; it may be earlier than
  the envelope's ``time`` when history was replayed (imports with historic times).
* Alerts events carry ids, scores and sentences built from ids and figures only, no
  personal data: an erased customer's warnings need no rewriting.
"""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from libs.events.catalog import DomainEvent, EventCatalog
from libs.platform.types import Instant

RiskLevel = Literal["none", "low", "medium", "high"]
Signal = Literal[
    "order_frequency_drop",
    "order_overdue",
    "complaints_increase",
    "interactions_fall",
    "key_contact_changed",
    "refunds_rising",
    "nps_detractor",
    "contract_ending",
    "loyalty_quiet",
]
ReminderKind = Literal["contract_renewal", "birthday", "no_interaction", "task_overdue"]
AlertClosure = Literal["resolved", "dismissed", "left_risk_level"]
AlertLevel = Literal["medium", "high"]


class _Part(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class Reason(_Part):
    """Why a customer is at risk: one signal that fired."""

    signal: Signal
    # Points of the 0-100 score this signal contributes.
    contribution: int = Field(ge=0, le=100)
    # In English, for logs and scripts; ``figures`` are the same facts as data.
    sentence: str
    # The events (envelope ids) behind it, newest first.
    event_ids: list[str] = Field(default_factory=list)
    # The numbers the sentence states, by name (decision 0109 lists them per signal),
    # so a reader can say them in its own language; empty before decision 0109.
    figures: dict[str, int | float | str | None] = Field(default_factory=dict)


class SignalRule(_Part):
    """How one signal is weighed: its weight, the window it looks at, when it fires."""

    enabled: bool = True
    # Relative weight: a signal at full strength adds ``weight`` points before capping.
    weight: int = Field(ge=0, le=100)
    window_days: int = Field(ge=1, le=3650)
    # What "fires" means for the signal (a ratio, a count, a day count: see the rules).
    threshold: float = Field(ge=0, le=100_000)


def _alerting() -> list[AlertLevel]:
    return ["medium", "high"]


def _following_up() -> list[AlertLevel]:
    return ["high"]


class ChurnRules(_Part):
    """A tenant's churn rules: one entry per signal, and the score's level bands."""

    signals: dict[Signal, SignalRule]
    high_from: int = Field(default=60, ge=1, le=100)
    medium_from: int = Field(default=35, ge=1, le=100)
    low_from: int = Field(default=10, ge=1, le=100)
    # The tenant's typical repeat interval in days, for a one-time buyer's overdue check
    # (None: measured from the tenant's own repeat buyers).
    typical_repeat_days: int | None = Field(default=None, ge=1, le=3650)
    # Reminders: a contract's end this many days ahead; an owned customer this many
    # days without an interaction (None: no such reminder).
    contract_renewal_days: int | None = Field(default=30, ge=1, le=366)
    no_interaction_days: int | None = Field(default=60, ge=1, le=3650)
    # A birthday this many days ahead, to the customer's owner (0: on the day).
    birthday_days: int | None = Field(default=7, ge=0, le=366)
    # Entering which levels opens an alert, and which of those also asks the owner for
    # a follow-up task (docs/decisions/0047).
    alert_levels: list[AlertLevel] = Field(default_factory=_alerting, max_length=2)
    follow_up_levels: list[AlertLevel] = Field(default_factory=_following_up, max_length=2)
    # The tenant's IANA time zone: the weekly list is published Monday 09:00 there.
    time_zone: str = Field(default="UTC", max_length=64)


# --- rules -------------------------------------------------------------------------


class ChurnRulesSet(DomainEvent, type_name="crm.alerts.churn_rules_set.v1"):
    """Tenant-level: the churn rules in force from now on (key: ``"rules"``)."""

    rules: ChurnRules
    by: str


# --- risk ----------------------------------------------------------------------------


class ChurnRiskChanged(DomainEvent, type_name="crm.alerts.churn_risk_changed.v1"):
    """A customer's risk level or score moved (either way), with the score, reasons and
    worth now: what the kept ranking holds for the customer (decision 0101)."""

    customer_id: str
    from_level: RiskLevel
    to_level: RiskLevel
    score: int = Field(ge=0, le=100)
    reasons: list[Reason] = Field(default_factory=list)
    owner_id: str | None = None
    as_of: Instant
    # The probability of no purchase in the next 90 days, the predicted value over 365
    # days (minor units) and their product (None: not known; absent before 0101).
    no_purchase_probability: float | None = Field(default=None, ge=0, le=1)
    predicted_value: int | None = Field(default=None, ge=0)
    revenue_at_risk: int | None = Field(default=None, ge=0)


class ChurnRiskRaised(DomainEvent, type_name="crm.alerts.churn_risk_raised.v1"):
    """A customer's level rose to high: once per rise (it must fall below high before
    another is raised)."""

    customer_id: str
    score: int = Field(ge=0, le=100)
    reasons: list[Reason]
    owner_id: str | None = None
    as_of: Instant


# --- alerts --------------------------------------------------------------------------


class AlertOpened(DomainEvent, type_name="crm.alerts.alert_opened.v1"):
    alert_id: str
    customer_id: str
    level: RiskLevel
    score: int = Field(ge=0, le=100)
    reasons: list[Reason]
    owner_id: str | None = None


class AlertAcknowledged(DomainEvent, type_name="crm.alerts.alert_acknowledged.v1"):
    alert_id: str
    customer_id: str
    by: str


class AlertClosed(DomainEvent, type_name="crm.alerts.alert_closed.v1"):
    """Resolved, dismissed (``reason`` is feedback the backtest counts) or closed
    because the customer left the risk level."""

    alert_id: str
    customer_id: str
    closure: AlertClosure
    reason: str = ""
    by: str | None = None


# --- acting on it --------------------------------------------------------------------


class FollowUpTaskRequested(DomainEvent, type_name="crm.alerts.follow_up_task_requested.v1"):
    """A follow-up for the owner of a high-risk customer: one per alert, for the
    pipeline to create as a task (docs/decisions/0032)."""

    alert_id: str
    customer_id: str
    # None: the customer has no owner; the task goes to the unassigned pool.
    owner_id: str | None = None
    title: str
    due_at: AwareDatetime
    # The id the task takes, derived from the alert: a redelivered request names the
    # same task, so it can never make a second one.
    task_id: str


class ReminderDue(DomainEvent, type_name="crm.alerts.reminder_due.v1"):
    """Something a rep should act on soon: each reminder fires once."""

    reminder_id: str
    kind: ReminderKind
    customer_id: str
    assignee_id: str | None = None
    due_on: date
    sentence: str
    # What the reminder is about (a contract, a task), when it is not the customer.
    subject_id: str | None = None
    # ``due_on`` is the day the reminder fell due: a contract's end, a task's due day,
    # and for a birthday the day it fired, never the birthday itself (decision 0057).


class WeeklyRiskListPublished(DomainEvent, type_name="crm.alerts.weekly_risk_list_published.v1"):
    """Monday's list for one owner: new, rising and still-open risks of the week."""

    week: str  # ISO week, e.g. "2026-W49"
    owner_id: str | None = None
    new: list[str] = Field(default_factory=list)
    rising: list[str] = Field(default_factory=list)
    still_open: list[str] = Field(default_factory=list)
    # Each list's order (decision 0101): the largest revenue at risk first, or the
    # highest score first (lists published before revenue at risk was kept).
    sorted_by: Literal["revenue_at_risk", "score"] = "score"


class NotificationSent(DomainEvent, type_name="crm.alerts.notification_sent.v1"):
    """An alerts event delivered to a subscriber (a webhook or an email address)."""

    notification_id: str
    subscription_id: str
    channel: Literal["webhook", "email"]
    event_id: str
    event_type: str
    attempts: int = Field(ge=1)


# --- webhook subscriptions (docs/decisions/0050) ---------------------------------------
# No secret and no e-mail address travels in these events: the secret signs
# deliveries and stays in the alerts database; an address is personal data.

WebhookChannel = Literal["webhook", "email"]


class WebhookSubscribed(DomainEvent, type_name="crm.alerts.webhook_subscribed.v1"):
    subscription_id: str
    channel: WebhookChannel
    # The receiver's origin and path (no query string, no credentials); None for e-mail.
    target: str | None = None
    event_types: list[str]
    content_mode: Literal["structured", "binary"] = "structured"
    by: str


class WebhookSubscriptionChanged(
    DomainEvent, type_name="crm.alerts.webhook_subscription_changed.v1"
):
    """New target, event types or content mode; a new secret; enabled again."""

    subscription_id: str
    channel: WebhookChannel
    target: str | None = None
    event_types: list[str]
    content_mode: Literal["structured", "binary"] = "structured"
    secret_rotated: bool = False
    enabled: bool = True
    by: str


class WebhookUnsubscribed(DomainEvent, type_name="crm.alerts.webhook_unsubscribed.v1"):
    subscription_id: str
    by: str


class WebhookDisabled(DomainEvent, type_name="crm.alerts.webhook_disabled.v1"):
    """No more deliveries until someone enables the subscription again: too many
    consecutive failed attempts, or disabled by a person (``by``)."""

    subscription_id: str
    consecutive_failures: int = Field(ge=0)
    reason: str
    by: str | None = None


catalog = EventCatalog(
    [
        ChurnRulesSet,
        ChurnRiskChanged,
        ChurnRiskRaised,
        AlertOpened,
        AlertAcknowledged,
        AlertClosed,
        FollowUpTaskRequested,
        ReminderDue,
        WeeklyRiskListPublished,
        NotificationSent,
        WebhookSubscribed,
        WebhookSubscriptionChanged,
        WebhookUnsubscribed,
        WebhookDisabled,
    ],
    schema_base_url="https://schemas.crm.example/events",
)
