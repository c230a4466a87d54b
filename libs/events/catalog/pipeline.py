"""The published language of the pipeline service: ``crm.pipeline.*.v1``.

Leads, deals, orders and refunds, contracts and follow-up tasks. A public contract
like ``catalog.contacts``: add fields with defaults; anything else is a new version.

Conventions:

* Money is an integer in the currency's minor unit (fen, cents; yen have none)
  beside its ISO 4217 ``currency``: no float ever carries an amount.
* The Kafka key (``partitionkey``) is the customer id; a lead not yet converted
  and a task for such a lead are keyed by the lead id. Each stream is one
  aggregate (an order, a deal, ...), so its events carry the aggregate's id.
* Pipeline events keep mostly ids and amounts about customers. ``PERSONAL_DATA``
  declares the exceptions, stored sealed so that erasure makes them unreadable: a
  lead's own contact fields (name, company, email, phone), and the reason given for
  an order's refund or cancellation, free text that may name the customer.
* An event carries its own time where business time can differ from when it was
  recorded (an order migrated from an ERP keeps its ``placed_at``); otherwise the
  envelope's ``time`` is the time of the fact.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from libs.events.catalog import DomainEvent, EventCatalog
from libs.events.vault import PersonalDataPolicy
from libs.platform.types import Day, Instant

LeadSource = Literal["web_form", "phone", "wechat", "trade_show", "referral", "import"]
# What reaching a stage means for the deal: still open, or closed one way or the other.
StageOutcome = Literal["open", "won", "lost"]


class Line(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    # Position in the order (1, 2, ...): refunds name lines by it.
    line_no: int
    sku: str
    name: str
    quantity: int
    # Minor units per piece.
    unit_price: int


class RefundedLine(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    line_no: int
    quantity: int


# --- orders --------------------------------------------------------------------------


class OrderPlaced(DomainEvent, type_name="crm.pipeline.order_placed.v1"):
    order_id: str
    customer_id: str
    # The order's id in the ERP or shop it came from; one external id is one order.
    external_id: str | None = None
    currency: str
    lines: list[Line] = Field(default_factory=list)
    # Minor units: what the customer paid, the lines plus shipping less the discount
    # (an order without lines has only a total).
    total: int
    shipping: int = 0
    discount: int = 0
    # Historic for migrated and synced orders: kept exactly as given.
    placed_at: Instant


class OrderRefunded(DomainEvent, type_name="crm.pipeline.order_refunded.v1"):
    order_id: str
    customer_id: str
    refund_id: str
    # Minor units given back by this refund; never more than what was left.
    amount: int
    currency: str
    # The lines given back, when the refund was by lines (empty: by amount).
    lines: list[RefundedLine] = Field(default_factory=list)
    reason: str = ""
    # Minor units of the order still refundable after this refund.
    remaining: int


class OrderCancelled(DomainEvent, type_name="crm.pipeline.order_cancelled.v1"):
    """The order did not happen: it no longer counts in the customer's figures."""

    order_id: str
    customer_id: str
    reason: str = ""


# --- deals ---------------------------------------------------------------------------


class DealStage(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    name: str
    # Percent, 0-100: weights the deal's amount in the forecast.
    probability: int
    outcome: StageOutcome = "open"


class DealStagesDefined(DomainEvent, type_name="crm.pipeline.deal_stages_defined.v1"):
    """Tenant-level: the stages of the tenant's deals, in pipeline order."""

    stages: list[DealStage]


class DealOpened(DomainEvent, type_name="crm.pipeline.deal_opened.v1"):
    deal_id: str
    customer_id: str
    title: str
    amount: int
    currency: str
    expected_close_on: Day | None = None
    owner_id: str | None = None
    stage: str
    probability: int
    # The lead this deal came from, when a conversion opened it.
    lead_id: str | None = None


class DealStageChanged(DomainEvent, type_name="crm.pipeline.deal_stage_changed.v1"):
    deal_id: str
    customer_id: str
    from_stage: str
    to_stage: str
    probability: int


class QuoteAttached(DomainEvent, type_name="crm.pipeline.quote_attached.v1"):
    """A quote sent for the deal: its lines and total (minor units)."""

    deal_id: str
    customer_id: str
    quote_id: str
    currency: str
    lines: list[Line]
    total: int
    valid_until: Day | None = None


class DealWon(DomainEvent, type_name="crm.pipeline.deal_won.v1"):
    """Follows the DealStageChanged into the tenant's won stage."""

    deal_id: str
    customer_id: str
    amount: int
    currency: str


class DealLost(DomainEvent, type_name="crm.pipeline.deal_lost.v1"):
    """Follows the DealStageChanged into the tenant's lost stage."""

    deal_id: str
    customer_id: str
    reason: str


# --- contracts -----------------------------------------------------------------------


class ContractSigned(DomainEvent, type_name="crm.pipeline.contract_signed.v1"):
    contract_id: str
    customer_id: str
    title: str
    value: int
    currency: str
    starts_on: Day
    ends_on: Day
    auto_renew: bool = False
    deal_id: str | None = None


class ContractRenewed(DomainEvent, type_name="crm.pipeline.contract_renewed.v1"):
    contract_id: str
    customer_id: str
    previous_ends_on: Day
    ends_on: Day
    value: int
    currency: str


class ContractTerminated(DomainEvent, type_name="crm.pipeline.contract_terminated.v1"):
    contract_id: str
    customer_id: str
    reason: str
    # The last day the contract is in force (may be before its end date).
    terminated_on: Day


# --- follow-up tasks -----------------------------------------------------------------


class TaskCreated(DomainEvent, type_name="crm.pipeline.task_created.v1"):
    task_id: str
    # What the follow-up is about: at least one of the three.
    customer_id: str | None = None
    lead_id: str | None = None
    deal_id: str | None = None
    title: str
    due_at: Instant
    assignee_id: str
    created_by: str


class TaskRescheduled(DomainEvent, type_name="crm.pipeline.task_rescheduled.v1"):
    task_id: str
    customer_id: str | None = None
    previous_due_at: Instant
    due_at: Instant


class TaskCompleted(DomainEvent, type_name="crm.pipeline.task_completed.v1"):
    task_id: str
    customer_id: str | None = None
    by: str
    note: str = ""


# --- leads ---------------------------------------------------------------------------


class LeadCaptured(DomainEvent, type_name="crm.pipeline.lead_captured.v1"):
    """A prospect's own contact fields: personal data (see ``PERSONAL_DATA``)."""

    lead_id: str
    name: str
    company: str | None = None
    email: str | None = None
    phone: str | None = None
    source: LeadSource
    owner_id: str | None = None
    # What assignment rules match on (a sales region, a line of business).
    territory: str | None = None
    industry: str | None = None


class LeadErased(DomainEvent, type_name="crm.pipeline.lead_erased.v1"):
    """Subscribers must drop the lead's name, company, email and phone."""

    erases_personal_data: ClassVar[bool] = True

    lead_id: str
    erased_at: Instant
    by: str


class AssignmentRule(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    # round_robin matches every lead; territory and industry match the lead's field.
    kind: Literal["round_robin", "territory", "industry"]
    match: str | None = None
    # Owners taking turns, in order.
    team: list[str]
    # Most open (new or qualified) leads an owner of this rule may hold; None: no cap.
    cap: int | None = None


class AssignmentRulesDefined(DomainEvent, type_name="crm.pipeline.assignment_rules_defined.v1"):
    """Tenant-level: the rules new leads are assigned by, tried in order."""

    rules: list[AssignmentRule]


class LeadAssigned(DomainEvent, type_name="crm.pipeline.lead_assigned.v1"):
    lead_id: str
    # None: no rule matched (or every owner was at their cap): the lead is queued.
    owner_id: str | None
    # Why: "manual", "round_robin", "territory:<tag>", "industry:<tag>", "queue".
    rule: str


class LeadQualified(DomainEvent, type_name="crm.pipeline.lead_qualified.v1"):
    lead_id: str
    by: str


class LeadDisqualified(DomainEvent, type_name="crm.pipeline.lead_disqualified.v1"):
    lead_id: str
    by: str
    reason: str


class LeadConverted(DomainEvent, type_name="crm.pipeline.lead_converted.v1"):
    """The lead became (or was linked to) a customer; keyed by that customer."""

    lead_id: str
    customer_id: str
    # True when an existing customer matched the lead's email or phone.
    linked_existing: bool = False
    deal_id: str | None = None


catalog = EventCatalog(
    [
        OrderPlaced,
        OrderRefunded,
        OrderCancelled,
        DealStagesDefined,
        DealOpened,
        DealStageChanged,
        DealWon,
        DealLost,
        QuoteAttached,
        ContractSigned,
        ContractRenewed,
        ContractTerminated,
        TaskCreated,
        TaskRescheduled,
        TaskCompleted,
        LeadCaptured,
        LeadAssigned,
        LeadQualified,
        LeadDisqualified,
        LeadConverted,
        AssignmentRulesDefined,
        LeadErased,
    ],
    schema_base_url="https://schemas.crm.example/events",
)

# What erasure must make unreadable in the pipeline's history (crypto-shredding). The
# subject is the event's partition key: the customer id, or the lead id of a lead not
# yet converted.
PERSONAL_DATA = PersonalDataPolicy(
    {
        LeadCaptured.type_name: {"name": "", "company": None, "email": None, "phone": None},
        OrderRefunded.type_name: {"reason": ""},
        OrderCancelled.type_name: {"reason": ""},
    }
)
