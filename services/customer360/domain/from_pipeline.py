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

from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Any

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
from services.customer360.domain.view import CustomerView, Fact, Outcome, Source

PIPELINE = Source("pipeline", service_topic("pipeline"), catalog)

# The orders shown: the most recent by when they were placed.
RECENT_ORDERS = 20

# ISO 4217 minor units where they are not 2 (the amounts travel in minor units).
_MINOR_UNITS = {
    **dict.fromkeys(
        (
            "BIF",
            "CLP",
            "DJF",
            "GNF",
            "ISK",
            "JPY",
            "KMF",
            "KRW",
            "PYG",
            "RWF",
            "UGX",
            "VND",
            "VUV",
            "XAF",
            "XOF",
            "XPF",
        ),
        0,
    ),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
}


def money(amount: int, currency: str) -> str:
    """``129900, "CNY"`` -> ``"1,299.00 CNY"``: minor units as a reader writes them."""
    digits = _MINOR_UNITS.get(currency, 2)
    value = abs(amount) / 10**digits
    sign = "-" if amount < 0 else ""
    return f"{sign}{value:,.{digits}f} {currency}"


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
        "expected_close_on": _iso(event.expected_close_on),
        "owner_id": event.owner_id,
        "opened_at": _at(fact.time),
        "quote": None,
    }
    deals = _put(view.sections["deals"], "deal_id", deal, order_by="opened_at")
    line = f"Deal opened: {event.title} ({money(event.amount, event.currency)}), {event.stage}"
    redacted = f"Deal opened ({money(event.amount, event.currency)}), {event.stage}"
    return Outcome(_with(view, deals=deals), fact.entry(line, redacted))


@PIPELINE.on(DealStageChanged)
def deal_stage_changed(view: CustomerView, event: DealStageChanged, fact: Fact) -> Outcome:
    deals = _patch(
        view.sections["deals"],
        "deal_id",
        event.deal_id,
        stage=event.to_stage,
        probability=event.probability,
    )
    line = f"Deal {event.deal_id} moved from {event.from_stage} to {event.to_stage}"
    return Outcome(_with(view, deals=deals), fact.entry(line))


@PIPELINE.on(QuoteAttached)
def quote_attached(view: CustomerView, event: QuoteAttached, fact: Fact) -> Outcome:
    quote = {
        "quote_id": event.quote_id,
        "total": event.total,
        "currency": event.currency,
        "valid_until": _iso(event.valid_until),
    }
    deals = _patch(view.sections["deals"], "deal_id", event.deal_id, quote=quote)
    line = f"Quote {event.quote_id} for deal {event.deal_id}: {money(event.total, event.currency)}"
    return Outcome(_with(view, deals=deals), fact.entry(line))


@PIPELINE.on(DealWon)
def deal_won(view: CustomerView, event: DealWon, fact: Fact) -> Outcome:
    deals = _without(view.sections["deals"], "deal_id", event.deal_id)
    line = f"Deal {event.deal_id} won ({money(event.amount, event.currency)})"
    return Outcome(_with(view, deals=deals), fact.entry(line))


@PIPELINE.on(DealLost)
def deal_lost(view: CustomerView, event: DealLost, fact: Fact) -> Outcome:
    deals = _without(view.sections["deals"], "deal_id", event.deal_id)
    line = f"Deal {event.deal_id} lost"
    return Outcome(
        _with(view, deals=deals),
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
        "placed_at": _at(event.placed_at),
    }
    orders = _put(view.sections["orders"], "order_id", order, order_by="placed_at")
    purchases = _count(
        view.sections["purchases"],
        event.currency,
        orders=1,
        spent=event.total,
        placed_at=event.placed_at,
    )
    line = f"Order {event.order_id} placed: {money(event.total, event.currency)}"
    return Outcome(
        _with(view, orders=orders[:RECENT_ORDERS], purchases=purchases),
        fact.entry(line, happened_at=event.placed_at),
    )


@PIPELINE.on(OrderRefunded)
def order_refunded(view: CustomerView, event: OrderRefunded, fact: Fact) -> Outcome:
    order = _find(view.sections["orders"], "order_id", event.order_id)
    orders = view.sections["orders"]
    if order is not None:
        refunded = order["refunded"] + event.amount
        status = "refunded" if event.remaining == 0 else "partly_refunded"
        orders = _patch(orders, "order_id", event.order_id, refunded=refunded, status=status)
    purchases = _count(
        view.sections["purchases"], event.currency, spent=-event.amount, refunded=event.amount
    )
    line = f"Order {event.order_id} refunded {money(event.amount, event.currency)}"
    return Outcome(
        _with(view, orders=orders, purchases=purchases),
        fact.entry(f"{line}: {event.reason}" if event.reason else line, line),
    )


@PIPELINE.on(OrderCancelled)
def order_cancelled(view: CustomerView, event: OrderCancelled, fact: Fact) -> Outcome:
    order = _find(view.sections["orders"], "order_id", event.order_id)
    line = f"Order {event.order_id} cancelled"
    entry = fact.entry(f"{line}: {event.reason}" if event.reason else line, line)
    if order is None or order["status"] == "cancelled":
        # Older than the orders kept: its amount is not known here (decision 20).
        return Outcome(view, entry)
    orders = _patch(view.sections["orders"], "order_id", event.order_id, status="cancelled")
    purchases = _count(
        view.sections["purchases"],
        order["currency"],
        orders=-1,
        spent=-(order["total"] - order["refunded"]),
    )
    return Outcome(_with(view, orders=orders, purchases=purchases), entry)


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
    contracts = _put(
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
    return Outcome(_with(view, contracts=contracts), fact.entry(line, redacted))


@PIPELINE.on(ContractRenewed)
def contract_renewed(view: CustomerView, event: ContractRenewed, fact: Fact) -> Outcome:
    contracts = _sorted(
        _patch(
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
    return Outcome(_with(view, contracts=contracts), fact.entry(line))


@PIPELINE.on(ContractTerminated)
def contract_terminated(view: CustomerView, event: ContractTerminated, fact: Fact) -> Outcome:
    contracts = _without(view.sections["contracts"], "contract_id", event.contract_id)
    line = f"Contract {event.contract_id} terminated as of {event.terminated_on.isoformat()}"
    return Outcome(
        _with(view, contracts=contracts),
        fact.entry(f"{line}: {event.reason}" if event.reason else line, line),
    )


# --- follow-up tasks -----------------------------------------------------------------


@PIPELINE.on(TaskCreated, customer_of=_task_customer)
def task_created(view: CustomerView, event: TaskCreated, fact: Fact) -> Outcome:
    task = {
        "task_id": event.task_id,
        "title": "" if view.erased else event.title,
        "due_at": _at(event.due_at),
        "assignee_id": event.assignee_id,
        "deal_id": event.deal_id,
    }
    tasks = _put(view.sections["tasks"], "task_id", task, order_by="due_at", newest_first=False)
    when = event.due_at.isoformat()
    return Outcome(
        _with(view, tasks=tasks),
        fact.entry(
            f"Task for {event.assignee_id}, due {when}: {event.title}",
            f"Task for {event.assignee_id}, due {when}",
        ),
    )


@PIPELINE.on(TaskRescheduled, customer_of=_task_customer)
def task_rescheduled(view: CustomerView, event: TaskRescheduled, fact: Fact) -> Outcome:
    tasks = _sorted(
        _patch(view.sections["tasks"], "task_id", event.task_id, due_at=_at(event.due_at)),
        "due_at",
        newest_first=False,
    )
    line = f"Task {event.task_id} moved to {event.due_at.isoformat()}"
    return Outcome(_with(view, tasks=tasks), fact.entry(line))


@PIPELINE.on(TaskCompleted, customer_of=_task_customer)
def task_completed(view: CustomerView, event: TaskCompleted, fact: Fact) -> Outcome:
    tasks = _without(view.sections["tasks"], "task_id", event.task_id)
    line = f"Task {event.task_id} done by {event.by}"
    return Outcome(
        _with(view, tasks=tasks),
        fact.entry(f"{line}: {event.note}" if event.note else line, line),
    )


@PIPELINE.on(LeadConverted)
def lead_converted(view: CustomerView, event: LeadConverted, fact: Fact) -> Outcome:
    line = f"Converted from lead {event.lead_id}"
    if event.linked_existing:
        line = f"Lead {event.lead_id} linked to this customer"
    return Outcome(view, fact.entry(line))


# --- helpers: sections are JSON-ready lists of dicts, replaced, never mutated -----------


def _with(view: CustomerView, **sections: Any) -> CustomerView:
    return replace(view, sections={**view.sections, **sections})


def _find(items: Iterable[Mapping[str, Any]], key: str, value: str) -> Mapping[str, Any] | None:
    return next((item for item in items if item[key] == value), None)


def _put(
    items: list[dict[str, Any]],
    key: str,
    item: dict[str, Any],
    *,
    order_by: str,
    newest_first: bool = True,
) -> list[dict[str, Any]]:
    kept = [i for i in items if i[key] != item[key]]
    return _sorted([*kept, item], order_by, newest_first=newest_first)


def _patch(
    items: list[dict[str, Any]], key: str, item_id: str, /, **changes: Any
) -> list[dict[str, Any]]:
    """``items`` with ``changes`` made to the one whose ``key`` is ``item_id``."""
    return [{**i, **changes} if i[key] == item_id else i for i in items]


def _without(items: list[dict[str, Any]], key: str, value: str) -> list[dict[str, Any]]:
    return [i for i in items if i[key] != value]


def _sorted(
    items: list[dict[str, Any]], order_by: str, *, newest_first: bool = True
) -> list[dict[str, Any]]:
    # UTC ISO 8601 times (``_at``), or dates, sort as their values do.
    return sorted(items, key=lambda i: str(i[order_by] or ""), reverse=newest_first)


def _count(
    purchases: Mapping[str, Any],
    currency: str,
    *,
    orders: int = 0,
    spent: int = 0,
    refunded: int = 0,
    placed_at: datetime | None = None,
) -> dict[str, Any]:
    """The purchase figures in ``currency`` after one change (amounts never mix currencies)."""
    figures = dict(
        purchases.get(currency)
        or {
            "orders": 0,
            "spent": 0,
            "refunded": 0,
            "first_order_at": None,
            "last_order_at": None,
        }
    )
    figures["orders"] += orders
    figures["spent"] += spent
    figures["refunded"] += refunded
    if placed_at is not None:
        at = _at(placed_at)
        if figures["first_order_at"] is None or at < figures["first_order_at"]:
            figures["first_order_at"] = at
        if figures["last_order_at"] is None or at > figures["last_order_at"]:
            figures["last_order_at"] = at
    return {**purchases, currency: figures}


def _iso(value: date | None) -> str | None:
    return value.isoformat() if value is not None else None


def _at(value: datetime) -> str:
    """A time as sortable text: ISO 8601 in UTC (the events may carry any offset)."""
    return value.astimezone(UTC).isoformat()
