"""What a caller may ask of the pipeline service, validated and normalised.

Every command is a pydantic model; invalid input raises ``pydantic.ValidationError``
whose ``loc`` names the field (the API turns it into 422 ``{field, reason}``). Money
is a strict integer in the currency's minor unit: a float never becomes an amount.
Ids of new aggregates and the acting user are set by the API, never by the body.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal, Self

from email_validator import EmailNotValidError, validate_email
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StringConstraints,
    model_validator,
)

from libs.events.catalog.pipeline import LeadSource, StageOutcome
from libs.platform.types import PERSON_PATTERN, Day, Instant
from services.pipeline.domain.money import currency_code

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"
MAX_LINES = 1000
# Far beyond any order, still exact in a JSON number read as a double by a client.
MAX_MINOR_UNITS = 2**53 - 1

Id = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
# An owner or an assignee: a person, whose id may be an e-mail address.
PersonId = Annotated[str, StringConstraints(pattern=PERSON_PATTERN)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Reason = Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)]
RequiredReason = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)
]
# Territories and industries are matched exactly, in lower case.
Tag = Annotated[
    str, StringConstraints(strip_whitespace=True, to_lower=True, min_length=1, max_length=64)
]
Currency = Annotated[str, AfterValidator(currency_code)]
MinorUnits = Annotated[StrictInt, Field(ge=0, le=MAX_MINOR_UNITS)]
PositiveMinorUnits = Annotated[StrictInt, Field(gt=0, le=MAX_MINOR_UNITS)]
Quantity = Annotated[StrictInt, Field(gt=0, le=1_000_000)]
Probability = Annotated[StrictInt, Field(ge=0, le=100)]
# Stage names are the tenant's words ("needs analysis", "报价"), compared exactly.
StageName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]


class Command(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# --- orders --------------------------------------------------------------------------


class OrderLine(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    sku: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
    name: Name
    quantity: Quantity
    unit_price: MinorUnits


class PlaceOrder(Command):
    order_id: Id
    customer_id: Id
    external_id: (
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)] | None
    ) = None
    currency: Currency
    lines: list[OrderLine] = Field(default_factory=list, max_length=MAX_LINES)
    # What the customer paid: the lines, plus shipping, less the discount. Derived when
    # left out; given, it must agree (a total that hides its reasons is refused).
    total: MinorUnits | None = None
    shipping: MinorUnits = 0
    discount: MinorUnits = 0
    # When the order was really placed (a migration, an ERP sync); now when left out.
    placed_at: Instant | None = None

    @model_validator(mode="after")
    def _lines_or_total(self) -> Self:
        if not self.lines and self.total is None:
            raise ValueError("an order needs lines or a total")
        return self


class LineToRefund(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    line_no: Annotated[StrictInt, Field(ge=1, le=MAX_LINES)]
    quantity: Quantity


class RefundOrder(Command):
    order_id: Id
    # Chosen by the caller (or the API), so a retried refund is given back once.
    refund_id: Id
    amount: PositiveMinorUnits | None = None
    lines: list[LineToRefund] | None = Field(default=None, min_length=1, max_length=MAX_LINES)
    reason: Reason = ""

    @model_validator(mode="after")
    def _amount_or_lines(self) -> Self:
        if (self.amount is None) == (self.lines is None):
            raise ValueError("a refund is either by amount or by lines (give exactly one)")
        return self


class CancelOrder(Command):
    order_id: Id
    reason: Reason = ""


# --- deals ---------------------------------------------------------------------------


class StageInput(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: StageName
    probability: Probability
    outcome: StageOutcome = "open"


class DefineDealStages(Command):
    stages: list[StageInput] = Field(min_length=3, max_length=30)


class OpenDeal(Command):
    deal_id: Id
    customer_id: Id
    title: Name
    amount: MinorUnits
    currency: Currency
    expected_close_on: Day | None = None
    owner_id: PersonId | None = None
    # The first open stage of the tenant when left out.
    stage: StageName | None = None
    lead_id: Id | None = None


class MoveDeal(Command):
    deal_id: Id
    stage: StageName
    # Required when the stage is the tenant's lost stage.
    reason: Reason = ""


class AttachQuote(Command):
    deal_id: Id
    quote_id: Id
    lines: list[OrderLine] = Field(min_length=1, max_length=MAX_LINES)
    # The sum of the lines when left out (a discount makes it less).
    total: MinorUnits | None = None
    valid_until: Day | None = None


# --- contracts -----------------------------------------------------------------------


class SignContract(Command):
    contract_id: Id
    customer_id: Id
    title: Name
    value: MinorUnits
    currency: Currency
    starts_on: Day
    ends_on: Day
    auto_renew: bool = False
    deal_id: Id | None = None


class RenewContract(Command):
    contract_id: Id
    ends_on: Day
    # The renewed term's value; the current value when left out.
    value: MinorUnits | None = None


class TerminateContract(Command):
    contract_id: Id
    reason: RequiredReason
    # The last day in force; today when left out.
    terminated_on: Day | None = None


# --- follow-up tasks -----------------------------------------------------------------


class CreateTask(Command):
    task_id: Id
    customer_id: Id | None = None
    lead_id: Id | None = None
    deal_id: Id | None = None
    title: Name
    due_at: Instant
    assignee_id: PersonId
    created_by: PersonId

    @model_validator(mode="after")
    def _about_something(self) -> Self:
        if not (self.customer_id or self.lead_id or self.deal_id):
            raise ValueError("a task is about a customer, a lead or a deal (give one)")
        return self


class RescheduleTask(Command):
    task_id: Id
    due_at: Instant


class CompleteTask(Command):
    task_id: Id
    by: PersonId
    note: Reason = ""


# --- leads ---------------------------------------------------------------------------


def _email(raw: str) -> str:
    try:
        # Syntax only: deliverability needs DNS, not something to ask per web form.
        return validate_email(raw.strip(), check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise ValueError(f"is not a valid email address: {exc}") from None


def _phone(raw: str) -> str:
    # Kept as written: contacts reads it in its region when the lead converts.
    digits = sum(c.isdigit() for c in raw)
    if not _PHONE.fullmatch(raw) or not 5 <= digits <= 20:
        raise ValueError("is not a phone number")
    return " ".join(raw.split())


_PHONE = re.compile(r"\+?[0-9 ()./-]+")
Email = Annotated[str, StringConstraints(max_length=254), AfterValidator(_email)]
Phone = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=40), AfterValidator(_phone)
]


class CaptureLead(Command):
    lead_id: Id
    name: Name
    company: Name | None = None
    email: Email | None = None
    phone: Phone | None = None
    source: LeadSource
    owner_id: PersonId | None = None
    territory: Tag | None = None
    industry: Tag | None = None


class RuleInput(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["round_robin", "territory", "industry"]
    match: Tag | None = None
    team: list[Id] = Field(min_length=1, max_length=200)
    cap: Annotated[StrictInt, Field(ge=1, le=1_000_000)] | None = None


class DefineAssignmentRules(Command):
    rules: list[RuleInput] = Field(max_length=100)


class AssignLead(Command):
    lead_id: Id
    # None returns the lead to the queue.
    owner_id: PersonId | None


class QualifyLead(Command):
    lead_id: Id
    by: PersonId


class DisqualifyLead(Command):
    lead_id: Id
    by: PersonId
    reason: RequiredReason
