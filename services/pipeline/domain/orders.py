"""The Order aggregate: placed once, refunded never beyond what is left, or cancelled.

Rules:

* ``placed_at`` is kept exactly as given (a migration or an ERP sync is historic),
  but never later than now (beyond a little clock skew).
* The same ``external_id`` twice is one order: placing again what is already
  placed decides nothing; the same external id with other content is a conflict,
  since the sync would otherwise silently keep the first version.
* A refund is by amount or by lines, never more than what is left: the amount
  against the order's remaining money, each line's quantity against the pieces of
  that line not yet given back. The total is the lines plus shipping less the
  discount (a total given beside lines must add up); a line is worth its share of
  the total; the refund that gives back
  the last pieces gives back everything left, so rounding never strands a fen.
* A refund id seen before with the same content is a retry: nothing new.
* A cancelled order did not happen: no refunds after it; an order with refunds
  is refunded, not cancelled.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from types import MappingProxyType

from libs.events.catalog import DomainEvent
from libs.events.catalog.pipeline import (
    Line,
    OrderCancelled,
    OrderPlaced,
    OrderRefunded,
    RefundedLine,
)
from libs.platform.errors import Conflict, Unprocessable
from services.pipeline.commands import CancelOrder, PlaceOrder, RefundOrder
from services.pipeline.domain.errors import AggregateNotFound, not_in_future

OrderCommand = PlaceOrder | RefundOrder | CancelOrder


class OrderNotFound(AggregateNotFound):
    def __init__(self, order_id: str) -> None:
        super().__init__("order", order_id)


class ExternalIdTaken(Conflict):
    """The external id names an order with other content (another customer, total...)."""

    def __init__(self, external_id: str, existing_id: str, differs: str) -> None:
        super().__init__(
            f"external id {external_id!r} is order {existing_id}, whose {differs} differs",
            existing_id=existing_id,
            field=differs,
        )


class OrderAlreadyPlaced(Conflict):
    def __init__(self, order_id: str) -> None:
        super().__init__(f"order {order_id} is already placed", existing_id=order_id)


class RefundExceedsRemaining(Unprocessable):
    def __init__(self, field: str, asked: int, left: int, unit: str) -> None:
        super().__init__(field, f"{asked} asked but only {left} {unit} left to refund")


class TotalDisagrees(Unprocessable):
    """The total, shipping or discount does not add up with the lines."""


class UnknownOrderLine(Unprocessable):
    def __init__(self, field: str, line_no: int) -> None:
        super().__init__(field, f"the order has no line {line_no}")


class RefundIdReused(Conflict):
    def __init__(self, refund_id: str) -> None:
        super().__init__(
            f"refund {refund_id} was already given with other content", refund_id=refund_id
        )


class OrderIsCancelled(Conflict):
    def __init__(self, order_id: str) -> None:
        super().__init__(f"order {order_id} is cancelled", order_id=order_id)


class OrderHasRefunds(Conflict):
    def __init__(self, order_id: str) -> None:
        super().__init__(
            f"order {order_id} has refunds: refund what is left instead of cancelling",
            order_id=order_id,
        )


@dataclass(frozen=True, slots=True)
class Order:
    id: str
    customer_id: str
    external_id: str | None
    currency: str
    lines: tuple[Line, ...]
    total: int
    placed_at: datetime
    version: int = 1
    refunded: int = 0
    # Pieces given back per line number.
    refunded_pieces: Mapping[int, int] = field(default_factory=lambda: MappingProxyType({}))
    refunds: Mapping[str, OrderRefunded] = field(default_factory=lambda: MappingProxyType({}))
    cancelled: bool = False

    @property
    def remaining(self) -> int:
        """Money that can still be refunded."""
        return 0 if self.cancelled else self.total - self.refunded

    @property
    def status(self) -> str:
        if self.cancelled:
            return "cancelled"
        if self.refunded == 0:
            return "placed"
        return "refunded" if self.remaining == 0 else "partially_refunded"

    def pieces_left(self, line: Line) -> int:
        return line.quantity - self.refunded_pieces.get(line.line_no, 0)


def evolve(state: Order | None, event: DomainEvent) -> Order | None:
    match event:
        case OrderPlaced():
            return Order(
                id=event.order_id,
                customer_id=event.customer_id,
                external_id=event.external_id,
                currency=event.currency,
                lines=tuple(event.lines),
                total=event.total,
                placed_at=event.placed_at,
            )
        case OrderRefunded() if state is not None:
            pieces = dict(state.refunded_pieces)
            for line in event.lines:
                pieces[line.line_no] = pieces.get(line.line_no, 0) + line.quantity
            return replace(
                state,
                version=state.version + 1,
                refunded=state.refunded + event.amount,
                refunded_pieces=MappingProxyType(pieces),
                refunds=MappingProxyType({**state.refunds, event.refund_id: event}),
            )
        case OrderCancelled() if state is not None:
            return replace(state, version=state.version + 1, cancelled=True)
    # Types this version does not know change nothing (a newer writer may add some).
    return state if state is None else replace(state, version=state.version + 1)


def fold(events: Iterable[DomainEvent]) -> Order | None:
    state: Order | None = None
    for event in events:
        state = evolve(state, event)
    return state


def decide(state: Order | None, command: OrderCommand, now: datetime) -> list[DomainEvent]:
    """The events ``command`` produces on ``state`` (for PlaceOrder: the order already
    holding its external id or order id, if any); raises a domain error instead."""
    match command:
        case PlaceOrder():
            return _place(state, command, now)
        case RefundOrder():
            return _refund(_existing(state, command.order_id), command)
        case CancelOrder():
            return _cancel(_existing(state, command.order_id), command)


def _existing(state: Order | None, order_id: str) -> Order:
    if state is None:
        raise OrderNotFound(order_id)
    return state


def _place(existing: Order | None, command: PlaceOrder, now: datetime) -> list[DomainEvent]:
    placed_at = not_in_future("placed_at", command.placed_at or now, now)
    lines = [
        Line(
            line_no=i,
            sku=line.sku,
            name=line.name,
            quantity=line.quantity,
            unit_price=line.unit_price,
        )
        for i, line in enumerate(command.lines, start=1)
    ]
    total = order_total(command)
    if existing is not None:
        if command.external_id is None or existing.external_id != command.external_id:
            raise OrderAlreadyPlaced(existing.id)
        differs = _first_difference(existing, command, lines, total)
        if differs is not None:
            raise ExternalIdTaken(command.external_id, existing.id, differs)
        return []  # the same order synced again
    return [
        OrderPlaced(
            order_id=command.order_id,
            customer_id=command.customer_id,
            external_id=command.external_id,
            currency=command.currency,
            lines=lines,
            total=total,
            shipping=command.shipping,
            discount=command.discount,
            placed_at=placed_at,
        )
    ]


def order_total(command: PlaceOrder) -> int:
    """What the customer paid: the lines, plus shipping, less the discount; a total
    given beside lines must be that sum, or the order would carry a figure nobody can
    explain (and refunds would share it out wrongly). TotalDisagrees otherwise."""
    if not command.lines:
        if command.shipping or command.discount:
            raise TotalDisagrees("shipping" if command.shipping else "discount", "needs lines")
        assert command.total is not None  # the command holds lines or a total
        return command.total
    lines_value = sum(line.quantity * line.unit_price for line in command.lines)
    due = lines_value + command.shipping - command.discount
    if due < 0:
        raise TotalDisagrees("discount", f"{command.discount} is more than the lines and shipping")
    if command.total is not None and command.total != due:
        reason = f"{command.total} is not the lines ({lines_value})"
        reason += f" + shipping ({command.shipping}) - discount ({command.discount}) = {due}"
        raise TotalDisagrees("total", reason)
    return due


def _first_difference(
    order: Order, command: PlaceOrder, lines: list[Line], total: int
) -> str | None:
    if order.customer_id != command.customer_id:
        return "customer_id"
    if order.currency != command.currency:
        return "currency"
    if order.total != total:
        return "total"
    if list(order.lines) != lines:
        return "lines"
    # A sync that leaves placed_at out means "when you first saw it".
    if command.placed_at is not None and command.placed_at != order.placed_at:
        return "placed_at"
    return None


def _value(line: Line) -> int:
    return line.quantity * line.unit_price


def _refund(order: Order, command: RefundOrder) -> list[DomainEvent]:
    if command.refund_id in order.refunds:
        before = order.refunds[command.refund_id]
        same_lines = [(x.line_no, x.quantity) for x in command.lines or []] == [
            (x.line_no, x.quantity) for x in before.lines
        ]
        if (command.amount is None or command.amount == before.amount) and same_lines:
            return []  # a retry of a refund already given
        raise RefundIdReused(command.refund_id)
    if order.cancelled:
        raise OrderIsCancelled(order.id)
    if command.amount is not None:
        amount, lines = command.amount, list[RefundedLine]()
        if amount > order.remaining:
            raise RefundExceedsRemaining("amount", amount, order.remaining, order.currency)
    elif order.remaining == 0:
        raise RefundExceedsRemaining("lines", 1, 0, order.currency)
    else:
        amount, lines = _refund_by_lines(order, command)
    return [
        OrderRefunded(
            order_id=order.id,
            customer_id=order.customer_id,
            refund_id=command.refund_id,
            amount=amount,
            currency=order.currency,
            lines=lines,
            reason=command.reason,
            remaining=order.remaining - amount,
        )
    ]


def _refund_by_lines(order: Order, command: RefundOrder) -> tuple[int, list[RefundedLine]]:
    by_no = {line.line_no: line for line in order.lines}
    asked: dict[int, int] = {}
    for i, wanted in enumerate(command.lines or []):
        field = f"lines.{i}.quantity"
        line = by_no.get(wanted.line_no)
        if line is None:
            raise UnknownOrderLine(f"lines.{i}.line_no", wanted.line_no)
        asked[line.line_no] = asked.get(line.line_no, 0) + wanted.quantity
        if asked[line.line_no] > order.pieces_left(line):
            raise RefundExceedsRemaining(
                field, asked[line.line_no], order.pieces_left(line), "pieces"
            )
    pieces_after = sum(order.pieces_left(line) for line in order.lines) - sum(asked.values())
    lines_value = sum(_value(line) for line in order.lines)
    value = sum(by_no[no].unit_price * quantity for no, quantity in asked.items())
    if pieces_after == 0:
        amount = order.remaining  # the last pieces take what is left, rounding included
    elif lines_value == order.total or lines_value == 0:
        amount = value
    else:
        amount = value * order.total // lines_value  # the lines' share of what was paid
    if amount > order.remaining:
        # Earlier refunds by amount already gave back part of these lines' money.
        raise RefundExceedsRemaining("lines", amount, order.remaining, order.currency)
    refunded = [RefundedLine(line_no=no, quantity=quantity) for no, quantity in asked.items()]
    return amount, refunded


def _cancel(order: Order, command: CancelOrder) -> list[DomainEvent]:
    if order.cancelled:
        return []
    if order.refunded:
        raise OrderHasRefunds(order.id)
    return [OrderCancelled(order_id=order.id, customer_id=order.customer_id, reason=command.reason)]
