"""What a client gets: the 360 view as the API answers it."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, computed_field

from libs.phones import international


class CustomerProfile(BaseModel):
    kind: str
    name: str
    email: str | None
    # E.164, as stored.
    phone: str | None
    birthday: date | None
    company_id: str | None
    attributes: dict[str, str | int | float]
    registered_at: datetime | None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def phone_international(self) -> str | None:
        """The phone as people write it, grouped by its country's plan."""
        return international(self.phone)


class ConsentDecision(BaseModel):
    granted: bool
    source: str
    at: datetime


class InteractionItem(BaseModel):
    interaction_id: str
    # The customer whose record logged it (a duplicate's id after a merge).
    customer_id: str
    channel: str
    direction: str
    summary: str
    by: str
    occurred_at: datetime


class TimelineItem(BaseModel):
    event_id: str
    # The event's type in the catalog: what ``facts`` holds (docs/events/schemas/).
    type: str
    time: datetime
    # An English headline, for scripts and logs.
    summary: str
    # The line as data, for a reader to render in its own language: the event's fields
    # as the catalog defines them, plus the human names the view knows of what it is
    # about (``order_number``, ``ticket_subject``, ``deal_title``, ``contract_title``,
    # ``task_title``). Personal data and free text are gone once the customer is erased.
    # None for lines written before the view kept them (a rebuild fills them in).
    facts: dict[str, Any] | None = None
    # The customer whose history it comes from (a duplicate's id after a merge).
    customer_id: str


class QuoteItem(BaseModel):
    quote_id: str
    # Minor units of ``currency`` (fen, cents), as the pipeline service publishes them.
    total: int
    currency: str
    valid_until: date | None


class DealItem(BaseModel):
    deal_id: str
    title: str
    amount: int
    currency: str
    stage: str
    probability: int
    expected_close_on: date | None
    owner_id: str | None
    opened_at: datetime
    # The latest quote sent for the deal.
    quote: QuoteItem | None


class OrderItem(BaseModel):
    order_id: str
    external_id: str | None
    total: int
    refunded: int
    currency: str
    status: Literal["placed", "partly_refunded", "refunded", "cancelled"]
    placed_at: datetime


class PurchaseFigures(BaseModel):
    currency: str
    # Orders placed and not cancelled.
    orders: int
    # What the customer paid, less refunds and cancelled orders.
    spent: int
    refunded: int
    first_order_at: datetime | None
    last_order_at: datetime | None


class ContractItem(BaseModel):
    contract_id: str
    title: str
    value: int
    currency: str
    starts_on: date
    ends_on: date
    auto_renew: bool
    deal_id: str | None


class TaskItem(BaseModel):
    task_id: str
    title: str
    due_at: datetime
    assignee_id: str
    deal_id: str | None


class TicketItem(BaseModel):
    ticket_id: str
    subject: str
    status: Literal["open", "pending", "solved"]
    priority: Literal["low", "normal", "high", "urgent"]
    category: Literal["question", "incident", "request", "complaint"]
    channel: str
    assignee_id: str | None
    group: str | None
    # True once any SLA target of the ticket was missed (``breached_targets`` says which).
    sla_breached: bool
    breached_targets: list[Literal["first_response", "resolution"]]
    # The last follow-up visit's verdict (complaints); None: no visit yet.
    follow_up_satisfied: bool | None = None
    # The CSAT score given for this ticket, if any.
    csat: int | None = None
    opened_at: datetime


class SlaBreachItem(BaseModel):
    ticket_id: str
    target: Literal["first_response", "resolution"]
    priority: str
    due_at: datetime


class CsatAnswer(BaseModel):
    survey_id: str
    ticket_id: str
    score: int
    satisfied: bool
    comment: str
    answered_at: datetime


class NpsAnswer(BaseModel):
    survey_id: str
    score: int
    group: Literal["promoter", "passive", "detractor"]
    comment: str
    answered_at: datetime


class ServiceFigures(BaseModel):
    # SLA breaches ever published for this customer's tickets.
    breaches: int
    # The most recent breaches, newest due time first.
    recent_breaches: list[SlaBreachItem]
    last_csat: CsatAnswer | None
    last_nps: NpsAnswer | None


class LedgerLine(BaseModel):
    event_id: str
    at: datetime
    # Signed: what the line added to (or took from) the balance.
    points: int
    # An earning reason (order, check_in, streak, birthday, referral, survey, campaign) or
    # clawback, owed_recovered, redemption, redemption_cancelled, expiry, adjustment,
    # merged_out, merged_in.
    reason: str
    # Free text a manager gave (an adjustment's, a cancellation's); blank once erased.
    note: str
    order_id: str | None
    reward_id: str | None


class LoyaltyAccount(BaseModel):
    balance: int
    # None until the loyalty service has published a tier for the customer.
    tier: str | None
    # Set while the tier is at risk: when it falls unless regained.
    downgrade_at: datetime | None
    # The most recent lines, newest first.
    lines: list[LedgerLine]


class ChurnReason(BaseModel):
    # The signal that fired (order_frequency_drop, complaints_increase, ...).
    signal: str
    # Points of the 0-100 score it contributes.
    contribution: int
    # What a sales rep reads, in English.
    sentence: str
    # The events behind it (envelope ids), newest first.
    event_ids: list[str]
    # The numbers the sentence states, by name, to word in the reader's language.
    figures: dict[str, int | float | str | None] = {}


class ChurnRiskSection(BaseModel):
    # high, medium, low or none.
    level: str
    score: int
    reasons: list[ChurnReason]
    # What the customer is worth (decision 0101): the probability of no purchase in the
    # next 90 days, the value predicted over 365 days and their product, minor units
    # (None: not known, or told before the platform kept them).
    no_purchase_probability: float | None = None
    predicted_value: int | None = None
    revenue_at_risk: int | None = None
    # The time the alerts service scored it (its last change of score or level).
    as_of: datetime


class AlertItem(BaseModel):
    alert_id: str
    level: str
    score: int
    # open, acknowledged, resolved, dismissed or left_risk_level.
    status: str
    # The signals behind the alert when it opened.
    signals: list[str]
    opened_at: datetime
    closed_at: datetime | None
    # A dismissal's or resolution's reason (free text); blank once erased.
    note: str


class BrokerPosition(BaseModel):
    topic: str
    partition: int
    offset: int


class ProjectionLag(BaseModel):
    generation: int
    # None until the first measurement (the broker is asked every few seconds).
    lag_events: int | None
    lag_seconds: float | None
    # True while the projection is not following its topics (then the view may be old).
    stalled: bool | None = None
    measured_at: datetime | None


class Freshness(BaseModel):
    # The customer's stream version this view includes (compare with ?min_version).
    version: int
    # Time of the newest event applied to this customer.
    updated_at: datetime | None
    # Where that event was read: the projector's position for this customer.
    position: BrokerPosition | None
    projection: ProjectionLag


class Customer360(BaseModel):
    customer_id: str
    # The id asked for: a merged duplicate's id is answered with its survivor's view.
    requested_id: str
    merged_ids: list[str]
    erased: bool
    erased_at: datetime | None
    profile: CustomerProfile
    tags: list[str]
    owner_id: str | None
    key_contacts: dict[str, str]
    consent: dict[str, ConsentDecision]
    interaction_count: int
    last_interaction_at: datetime | None
    last_interaction: InteractionItem | None
    recent_interactions: list[InteractionItem]
    timeline: list[TimelineItem]
    # The sales section (the pipeline service): open deals, the most recent orders,
    # the purchase figures per currency, active contracts and open follow-up tasks.
    deals: list[DealItem]
    orders: list[OrderItem]
    purchases: list[PurchaseFigures]
    contracts: list[ContractItem]
    tasks: list[TaskItem]
    # The service section (the tickets service): tickets not yet closed, newest first,
    # and the breaches and survey answers.
    tickets: list[TicketItem]
    service: ServiceFigures
    # The loyalty section (the loyalty service); None until it has said something.
    loyalty: LoyaltyAccount | None
    # The churn risk (the alerts service) as of its last change of level; None until
    # then. The alerts API's /customers/{id}/churn-risk scores it live.
    churn_risk: ChurnRiskSection | None
    # Churn alerts, newest first, with their status.
    alerts: list[AlertItem]
    freshness: Freshness
