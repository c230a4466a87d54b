"""What the pipeline service's events do to the 360 view (``crm.pipeline.events``).

The sales section: open deals with their stage (and latest quote), recent orders
and the purchase figures per currency, active contracts, open follow-up tasks,
and a timeline line for each of these events. Leads are not customers: only what
names a customer is applied (a lead's task waits for nothing, it is not shown).

Titles, reasons and notes are free text that may name the person: the redacted
timeline line leaves them out, and an erasure blanks them in the section.
Decision 20 says what the figures count and where they stop.
"""

from __future__ import annotations

from libs.events.catalog.pipeline import (
    ContractRenewed,
    ContractSigned,
    ContractTerminated,
    DealLost,
    DealOpened,
    DealStageChanged,
    DealWon,
    LeadConverted,
    OrderCancelled,
    OrderPlaced,
    OrderRefunded,
    QuoteAttached,
    TaskCompleted,
    TaskCreated,
    TaskRescheduled,
    catalog,
)
from libs.events.kafka import service_topic
from services.customer360.domain.sections import (
    count,
    find,
    iso,
    money,
    patch,
    put,
    sorted_by,
    utc_iso,
    with_sections,
    without,
)
from services.customer360.domain.view import CustomerView, Fact, Outcome, Source

PIPELINE = Source("pipeline", service_topic("pipeline"), catalog)

# The orders shown: the most recent by when they were placed.
RECENT_ORDERS = 20


def _task_customer(event: TaskCreated | TaskRescheduled | TaskCompleted) -> str | None:
    return event.customer_id  # None: a lead's task, not about a customer


# --- deals ---------------------------------------------------------------------------


@PIPELINE.on(DealOpened)
def deal_opened(view: CustomerView, event: DealOpened, fact: Fact) -> Outcome:
    deal = {
        "deal_id": event.deal_id,
        "title": "" if view.erased else event.title,
        "amount": event.amount,
        "currency": event.currency,
        "stage": event.stage,
        "probability": event.probability,
        "expected_close_on": iso(event.expected_close_on),
        "owner_id": event.owner_id,
        "opened_at": utc_iso(fact.time),
        "quote": None,
    }
    deals = put(view.sections["deals"], "deal_id", deal, order_by="opened_at")
    line = f"Deal opened: {event.title} ({money(event.amount, event.currency)}), {event.stage}"
    redacted = f"Deal opened ({money(event.amount, event.currency)}), {event.stage}"
    return Outcome(with_sections(view, deals=deals), fact.entry(line, redacted))


@PIPELINE.on(DealStageChanged)
def deal_stage_changed(view: CustomerView, event: DealStageChanged, fact: Fact) -> Outcome:
    deals = patch(
        view.sections["deals"],
        "deal_id",
        event.deal_id,
        stage=event.to_stage,
        probability=event.probability,
    )
    line = f"Deal {event.deal_id} moved from {event.from_stage} to {event.to_stage}"
    return Outcome(with_sections(view, deals=deals), fact.entry(line))


@PIPELINE.on(QuoteAttached)
def quote_attached(view: CustomerView, event: QuoteAttached, fact: Fact) -> Outcome:
    quote = {
        "quote_id": event.quote_id,
        "total": event.total,
        "currency": event.currency,
        "valid_until": iso(event.valid_until),
    }
    deals = patch(view.sections["deals"], "deal_id", event.deal_id, quote=quote)
    line = f"Quote {event.quote_id} for deal {event.deal_id}: {money(event.total, event.currency)}"
    return Outcome(with_sections(view, deals=deals), fact.entry(line))


@PIPELINE.on(DealWon)
def deal_won(view: CustomerView, event: DealWon, fact: Fact) -> Outcome:
    deals = without(view.sections["deals"], "deal_id", event.deal_id)
    line = f"Deal {event.deal_id} won ({money(event.amount, event.currency)})"
    return Outcome(with_sections(view, deals=deals), fact.entry(line))


@PIPELINE.on(DealLost)
def deal_lost(view: CustomerView, event: DealLost, fact: Fact) -> Outcome:
    deals = without(view.sections["deals"], "deal_id", event.deal_id)
    line = f"Deal {event.deal_id} lost"
    return Outcome(
        with_sections(view, deals=deals),
        fact.entry(f"{line}: {event.reason}" if event.reason else line, line),
    )


# --- orders and the purchase figures ---------------------------------------------------


@PIPELINE.on(OrderPlaced)
def order_placed(view: CustomerView, event: OrderPlaced, fact: Fact) -> Outcome:
    if any(o["order_id"] == event.order_id for o in view.sections["orders"]):
        return Outcome(view)  # the same order again (a retried sync): counted once
    order = {
        "order_id": event.order_id,
        "external_id": event.external_id,
        "total": event.total,
        "refunded": 0,
        "currency": event.currency,
        "status": "placed",
        "placed_at": utc_iso(event.placed_at),
    }
    orders = put(view.sections["orders"], "order_id", order, order_by="placed_at")
    purchases = count(
        view.sections["purchases"],
        event.currency,
        orders=1,
        spent=event.total,
        placed_at=event.placed_at,
    )
    line = f"Order {event.order_id} placed: {money(event.total, event.currency)}"
    return Outcome(
        with_sections(view, orders=orders[:RECENT_ORDERS], purchases=purchases),
        fact.entry(line, happened_at=event.placed_at),
    )


@PIPELINE.on(OrderRefunded)
def order_refunded(view: CustomerView, event: OrderRefunded, fact: Fact) -> Outcome:
    order = find(view.sections["orders"], "order_id", event.order_id)
    orders = view.sections["orders"]
    if order is not None:
        refunded = order["refunded"] + event.amount
        status = "refunded" if event.remaining == 0 else "partly_refunded"
        orders = patch(orders, "order_id", event.order_id, refunded=refunded, status=status)
    purchases = count(
        view.sections["purchases"], event.currency, spent=-event.amount, refunded=event.amount
    )
    line = f"Order {event.order_id} refunded {money(event.amount, event.currency)}"
    return Outcome(
        with_sections(view, orders=orders, purchases=purchases),
        fact.entry(f"{line}: {event.reason}" if event.reason else line, line),
    )


@PIPELINE.on(OrderCancelled)
def order_cancelled(view: CustomerView, event: OrderCancelled, fact: Fact) -> Outcome:
    order = find(view.sections["orders"], "order_id", event.order_id)
    line = f"Order {event.order_id} cancelled"
    entry = fact.entry(f"{line}: {event.reason}" if event.reason else line, line)
    if order is None or order["status"] == "cancelled":
        # Older than the orders kept: its amount is not known here (decision 20).
        return Outcome(view, entry)
    orders = patch(view.sections["orders"], "order_id", event.order_id, status="cancelled")
    purchases = count(
        view.sections["purchases"],
        order["currency"],
        orders=-1,
        spent=-(order["total"] - order["refunded"]),
    )
    return Outcome(with_sections(view, orders=orders, purchases=purchases), entry)


# --- contracts -----------------------------------------------------------------------


@PIPELINE.on(ContractSigned)
def contract_signed(view: CustomerView, event: ContractSigned, fact: Fact) -> Outcome:
    contract = {
        "contract_id": event.contract_id,
        "title": "" if view.erased else event.title,
        "value": event.value,
        "currency": event.currency,
        "starts_on": event.starts_on.isoformat(),
        "ends_on": event.ends_on.isoformat(),
        "auto_renew": event.auto_renew,
        "deal_id": event.deal_id,
    }
    contracts = put(
        view.sections["contracts"], "contract_id", contract, order_by="ends_on", newest_first=False
    )
    line = (
        f"Contract signed: {event.title} ({money(event.value, event.currency)}, "
        f"{event.starts_on.isoformat()} to {event.ends_on.isoformat()})"
    )
    redacted = (
        f"Contract {event.contract_id} signed ({money(event.value, event.currency)}, "
        f"{event.starts_on.isoformat()} to {event.ends_on.isoformat()})"
    )
    return Outcome(with_sections(view, contracts=contracts), fact.entry(line, redacted))


@PIPELINE.on(ContractRenewed)
def contract_renewed(view: CustomerView, event: ContractRenewed, fact: Fact) -> Outcome:
    contracts = sorted_by(
        patch(
            view.sections["contracts"],
            "contract_id",
            event.contract_id,
            ends_on=event.ends_on.isoformat(),
            value=event.value,
            currency=event.currency,
        ),
        "ends_on",
        newest_first=False,
    )
    line = (
        f"Contract {event.contract_id} renewed to {event.ends_on.isoformat()} "
        f"({money(event.value, event.currency)})"
    )
    return Outcome(with_sections(view, contracts=contracts), fact.entry(line))


@PIPELINE.on(ContractTerminated)
def contract_terminated(view: CustomerView, event: ContractTerminated, fact: Fact) -> Outcome:
    contracts = without(view.sections["contracts"], "contract_id", event.contract_id)
    line = f"Contract {event.contract_id} terminated as of {event.terminated_on.isoformat()}"
    return Outcome(
        with_sections(view, contracts=contracts),
        fact.entry(f"{line}: {event.reason}" if event.reason else line, line),
    )


# --- follow-up tasks -----------------------------------------------------------------


@PIPELINE.on(TaskCreated, customer_of=_task_customer)
def task_created(view: CustomerView, event: TaskCreated, fact: Fact) -> Outcome:
    task = {
        "task_id": event.task_id,
        "title": "" if view.erased else event.title,
        "due_at": utc_iso(event.due_at),
        "assignee_id": event.assignee_id,
        "deal_id": event.deal_id,
    }
    tasks = put(view.sections["tasks"], "task_id", task, order_by="due_at", newest_first=False)
    when = event.due_at.isoformat()
    return Outcome(
        with_sections(view, tasks=tasks),
        fact.entry(
            f"Task for {event.assignee_id}, due {when}: {event.title}",
            f"Task for {event.assignee_id}, due {when}",
        ),
    )


@PIPELINE.on(TaskRescheduled, customer_of=_task_customer)
def task_rescheduled(view: CustomerView, event: TaskRescheduled, fact: Fact) -> Outcome:
    tasks = sorted_by(
        patch(view.sections["tasks"], "task_id", event.task_id, due_at=utc_iso(event.due_at)),
        "due_at",
        newest_first=False,
    )
    line = f"Task {event.task_id} moved to {event.due_at.isoformat()}"
    return Outcome(with_sections(view, tasks=tasks), fact.entry(line))


@PIPELINE.on(TaskCompleted, customer_of=_task_customer)
def task_completed(view: CustomerView, event: TaskCompleted, fact: Fact) -> Outcome:
    tasks = without(view.sections["tasks"], "task_id", event.task_id)
    line = f"Task {event.task_id} done by {event.by}"
    return Outcome(
        with_sections(view, tasks=tasks),
        fact.entry(f"{line}: {event.note}" if event.note else line, line),
    )


@PIPELINE.on(LeadConverted)
def lead_converted(view: CustomerView, event: LeadConverted, fact: Fact) -> Outcome:
    line = f"Converted from lead {event.lead_id}"
    if event.linked_existing:
        line = f"Lead {event.lead_id} linked to this customer"
    return Outcome(view, fact.entry(line))
