"""The published language of the tickets service: ``crm.tickets.*.v1``.

A public contract (see ``catalog.contacts`` for the rules of change). Conventions:

* Every event about a ticket carries ``ticket_id`` (its stream) and ``customer_id``
  (the Kafka key). When a customer is merged, the ticket's later events carry the
  survivor (``TicketCustomerChanged`` says when).
* The envelope's ``time`` is the time of the fact, except where the business time can
  differ from the time it was recorded (a follow-up visit's ``visited_at``).
* SLA targets are business minutes of a calendar. ``SlaPolicyApplied`` fixes, in the
  ticket's own stream, which policy version and calendar version measure it, so every
  SLA clock can be recomputed exactly from the stream (decision 0024).
* ``PERSONAL_DATA`` below names the fields that read as the given value once the
  customer's personal data is erased: the requester's details copied into a ticket and
  the free text written about the customer (subjects, descriptions, replies, reopening
  reasons, visit notes, survey comments), which often names them (decision 0098).
"""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from libs.events.catalog import DomainEvent, EventCatalog
from libs.events.vault import PersonalDataPolicy
from libs.platform.types import Instant

Channel = Literal["phone", "email", "wechat", "web", "visit"]
Category = Literal["question", "incident", "request", "complaint"]
Priority = Literal["low", "normal", "high", "urgent"]
Status = Literal["open", "pending", "solved", "closed"]
SlaTarget = Literal["first_response", "resolution"]
SurveyKind = Literal["csat", "nps"]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


class _Part(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class TicketOpened(DomainEvent, type_name="crm.tickets.ticket_opened.v1"):
    ticket_id: str
    customer_id: str
    subject: str
    description: str = ""
    channel: Channel
    category: Category
    priority: Priority
    # Who raised it, as they gave it (may differ from the customer's profile).
    requester_name: str | None = None
    requester_email: str | None = None
    requester_phone: str | None = None
    opened_by: str


class SlaPolicyApplied(DomainEvent, type_name="crm.tickets.sla_policy_applied.v1"):
    """The targets that measure the ticket from now on, counted from when it was opened.

    Emitted when the ticket is opened and when its priority changes. ``None`` targets:
    the policy sets none for this priority (no clock, never breached).
    """

    ticket_id: str
    customer_id: str
    policy: str
    policy_version: int
    calendar: str
    calendar_version: int
    priority: Priority
    first_response_minutes: int | None = None
    resolution_minutes: int | None = None


class TicketAssigned(DomainEvent, type_name="crm.tickets.ticket_assigned.v1"):
    ticket_id: str
    customer_id: str
    # None: taken out of the agent's (or the group's) hands.
    assignee_id: str | None = None
    group: str | None = None
    previous_assignee_id: str | None = None
    by: str
    # The auto-dispatch or escalation rule that assigned it; None when a person did.
    rule: str | None = None


class TicketReplied(DomainEvent, type_name="crm.tickets.ticket_replied.v1"):
    ticket_id: str
    customer_id: str
    reply_id: str
    # Public replies reach the customer; internal notes are for agents only.
    public: bool
    body: str
    by: str
    # The first public reply: it stops the first-response clock.
    first_response: bool = False


class TicketStatusChanged(DomainEvent, type_name="crm.tickets.ticket_status_changed.v1"):
    """Pending means waiting on the customer: the resolution clock pauses."""

    ticket_id: str
    customer_id: str
    from_status: Status
    to_status: Status
    by: str


class TicketPriorityChanged(DomainEvent, type_name="crm.tickets.ticket_priority_changed.v1"):
    ticket_id: str
    customer_id: str
    from_priority: Priority
    to_priority: Priority
    by: str
    rule: str | None = None


class TicketReopened(DomainEvent, type_name="crm.tickets.ticket_reopened.v1"):
    ticket_id: str
    customer_id: str
    from_status: Status
    by: str
    # Why, e.g. "customer unsatisfied at the follow-up visit".
    reason: str = ""


class SlaBreached(DomainEvent, type_name="crm.tickets.sla_breached.v1"):
    """A target was missed: published once, within seconds of ``due_at``."""

    ticket_id: str
    customer_id: str
    target: SlaTarget
    due_at: AwareDatetime
    priority: Priority
    policy: str
    assignee_id: str | None = None


class TicketEscalated(DomainEvent, type_name="crm.tickets.ticket_escalated.v1"):
    ticket_id: str
    customer_id: str
    rule: str
    target: SlaTarget
    # "breached", or minutes before the due time the rule fires at.
    trigger: str
    actions: list[str] = Field(default_factory=list)


class FollowUpVisitRecorded(DomainEvent, type_name="crm.tickets.follow_up_visit_recorded.v1"):
    """A follow-up visit (回访): closes a complaint's loop, or reopens it."""

    ticket_id: str
    customer_id: str
    visit_id: str
    visited_by: str
    visited_at: Instant
    outcome: str = ""
    satisfied: bool


class TicketCustomerChanged(DomainEvent, type_name="crm.tickets.ticket_customer_changed.v1"):
    """The customer was merged into another: the ticket follows the survivor."""

    ticket_id: str
    customer_id: str  # the survivor
    previous_customer_id: str


class SurveySent(DomainEvent, type_name="crm.tickets.survey_sent.v1"):
    """A one-time link was issued (its token is never published)."""

    survey_id: str
    customer_id: str
    kind: SurveyKind
    ticket_id: str | None = None
    expires_at: AwareDatetime


class CsatAnswered(DomainEvent, type_name="crm.tickets.csat_answered.v1"):
    survey_id: str
    customer_id: str
    ticket_id: str
    score: int = Field(ge=1, le=5)
    # 4 and 5 count as satisfied.
    satisfied: bool
    comment: str = ""


class NpsAnswered(DomainEvent, type_name="crm.tickets.nps_answered.v1"):
    survey_id: str
    customer_id: str
    score: int = Field(ge=0, le=10)
    # promoter 9-10, passive 7-8, detractor 0-6.
    group: Literal["promoter", "passive", "detractor"]
    comment: str = ""


class Targets(_Part):
    """Business minutes; None: no target of that kind."""

    first_response_minutes: int | None = None
    resolution_minutes: int | None = None


class SlaPolicyDefined(DomainEvent, type_name="crm.tickets.sla_policy_defined.v1"):
    """Tenant-level (key: ``sla-policy:<name>``): a new version of a policy."""

    policy: str
    version: int
    calendar: str
    targets: dict[Priority, Targets]
    # Stricter targets for customers with a tag (first matching tag wins).
    by_tag: dict[str, dict[Priority, Targets]] = Field(default_factory=dict)


class WorkingHours(_Part):
    start: str  # "09:00"
    end: str  # "18:00"; "24:00" for until midnight


class BusinessCalendarDefined(DomainEvent, type_name="crm.tickets.business_calendar_defined.v1"):
    """Tenant-level (key: ``business-calendar:<name>``): a new version of a calendar."""

    calendar: str
    version: int
    time_zone: str
    week: dict[Weekday, list[WorkingHours]]
    holidays: list[date] = Field(default_factory=list)
    # Weekend days worked in exchange for a holiday (调休), with the hours of
    # ``make_up_hours_of``.
    make_up_days: list[date] = Field(default_factory=list)
    make_up_hours_of: Weekday = "mon"


class EscalationRule(_Part):
    """On a breach (``minutes_before`` 0) or that long before it: reassign, raise priority."""

    name: str
    target: SlaTarget
    minutes_before: int = 0
    # The priorities it applies to; empty: all.
    priorities: list[Priority] = Field(default_factory=list)
    assign_to: str | None = None
    group: str | None = None
    raise_priority: bool = False


class EscalationRulesDefined(DomainEvent, type_name="crm.tickets.escalation_rules_defined.v1"):
    """Tenant-level (key: ``escalation-rules``): the whole rule set, a new version."""

    version: int
    rules: list[EscalationRule]


class DispatchRule(_Part):
    """Where a new ticket goes: the first rule that matches assigns it to its group and,
    within the group, to the agent with the fewest open tickets or the next in turn."""

    name: str
    category: Category | None = None
    channel: Channel | None = None
    customer_tag: str | None = None
    group: str
    agents: list[str] = Field(default_factory=list)
    strategy: Literal["fewest_open", "round_robin"] = "fewest_open"


class DispatchRulesDefined(DomainEvent, type_name="crm.tickets.dispatch_rules_defined.v1"):
    """Tenant-level (key: ``dispatch-rules``): the whole rule set, a new version."""

    version: int
    rules: list[DispatchRule]


# What erasure makes unreadable in the immutable history (the subject is the customer).
PERSONAL_DATA = PersonalDataPolicy(
    {
        TicketOpened.type_name: {
            "subject": "",
            "description": "",
            "requester_name": None,
            "requester_email": None,
            "requester_phone": None,
        },
        TicketReplied.type_name: {"body": ""},
        TicketReopened.type_name: {"reason": ""},
        FollowUpVisitRecorded.type_name: {"outcome": ""},
        CsatAnswered.type_name: {"comment": ""},
        NpsAnswered.type_name: {"comment": ""},
    }
)

catalog = EventCatalog(
    [
        TicketOpened,
        SlaPolicyApplied,
        TicketAssigned,
        TicketReplied,
        TicketStatusChanged,
        TicketPriorityChanged,
        TicketReopened,
        SlaBreached,
        TicketEscalated,
        FollowUpVisitRecorded,
        TicketCustomerChanged,
        SurveySent,
        CsatAnswered,
        NpsAnswered,
        SlaPolicyDefined,
        BusinessCalendarDefined,
        EscalationRulesDefined,
        DispatchRulesDefined,
    ],
    schema_base_url="https://schemas.crm.example/events",
)
