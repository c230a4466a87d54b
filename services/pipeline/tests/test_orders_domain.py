"""Order rules, given events, when a command, then events or a named error."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from libs.events.catalog.pipeline import Line, OrderCancelled, OrderPlaced, OrderRefunded
from services.pipeline.commands import CancelOrder, OrderLine, PlaceOrder, RefundOrder
from services.pipeline.domain.errors import TimeInTheFuture
from services.pipeline.domain.orders import (
    ExternalIdTaken,
    OrderAlreadyPlaced,
    OrderHasRefunds,
    OrderIsCancelled,
    OrderNotFound,
    RefundExceedsRemaining,
    RefundIdReused,
    TotalDisagrees,
    UnknownOrderLine,
    decide,
    fold,
)

T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
HISTORIC = datetime(2019, 3, 14, 15, 9, 26, 535897, tzinfo=UTC)


def placed(total: int | None = None, **overrides: object) -> OrderPlaced:
    lines = [
        Line(line_no=1, sku="TEA-01", name="龙井 250g", quantity=2, unit_price=8800),
        Line(line_no=2, sku="CUP-02", name="Cup", quantity=3, unit_price=1500),
    ]
    data: dict[str, object] = {
        "order_id": "o-1",
        "customer_id": "c-1",
        "external_id": "ERP-7",
        "currency": "CNY",
        "lines": lines,
        "total": 22100 if total is None else total,
        "placed_at": HISTORIC,
    }
    return OrderPlaced.model_validate(data | overrides)


def place(**overrides: object) -> PlaceOrder:
    data: dict[str, object] = {
        "order_id": "o-2",
        "customer_id": "c-1",
        "external_id": "ERP-7",
        "currency": "cny",
        "lines": [
            OrderLine(sku="TEA-01", name="龙井 250g", quantity=2, unit_price=8800),
            OrderLine(sku="CUP-02", name="Cup", quantity=3, unit_price=1500),
        ],
        "placed_at": HISTORIC,
    }
    return PlaceOrder.model_validate(data | overrides)


def refund(**fields: object) -> RefundOrder:
    return RefundOrder.model_validate({"order_id": "o-1", "refund_id": "r-1"} | fields)


def test_an_order_keeps_its_historic_placed_at_and_totals_its_lines() -> None:
    (event,) = decide(None, place(external_id=None), T0)
    assert isinstance(event, OrderPlaced)
    assert event.placed_at == HISTORIC
    assert event.total == 2 * 8800 + 3 * 1500
    assert event.currency == "CNY"
    assert [line.line_no for line in event.lines] == [1, 2]


def test_an_order_placed_without_a_time_is_placed_now() -> None:
    (event,) = decide(None, place(placed_at=None), T0)
    assert isinstance(event, OrderPlaced)
    assert event.placed_at == T0


def test_an_order_in_the_future_is_refused() -> None:
    with pytest.raises(TimeInTheFuture) as refused:
        decide(None, place(placed_at=T0 + timedelta(hours=1)), T0)
    assert refused.value.field == "placed_at"


def test_the_same_external_id_twice_is_one_order() -> None:
    existing = fold([placed()])
    assert decide(existing, place(), T0) == []
    # A sync that leaves the time out is still the same order.
    assert decide(existing, place(placed_at=None), T0) == []


def test_the_total_is_the_lines_plus_shipping_less_the_discount() -> None:
    (event,) = decide(None, place(shipping=1000, discount=600, total=22500), T0)
    assert isinstance(event, OrderPlaced)
    assert (event.total, event.shipping, event.discount) == (22500, 1000, 600)
    (derived,) = decide(None, place(order_id="o-3", external_id=None, discount=2100), T0)
    assert isinstance(derived, OrderPlaced) and derived.total == 20000


@pytest.mark.parametrize(
    ("given", "field"),
    [
        ({"total": 100}, "total"),  # lines of 22100 and nothing to say why
        ({"total": 22100, "discount": 1}, "total"),
        ({"discount": 22101}, "discount"),  # more than the order is worth
        ({"lines": [], "total": 500, "shipping": 10}, "shipping"),
    ],
)
def test_a_total_that_does_not_add_up_is_refused_naming_its_field(
    given: dict[str, object], field: str
) -> None:
    with pytest.raises(TotalDisagrees) as refused:
        decide(None, place(external_id=None, **given), T0)
    assert refused.value.field == field


def test_the_same_external_id_with_another_total_is_a_conflict() -> None:
    with pytest.raises(ExternalIdTaken) as taken:
        decide(fold([placed()]), place(discount=100), T0)
    assert taken.value.extra["existing_id"] == "o-1"
    assert taken.value.extra["field"] == "total"


def test_an_order_id_is_placed_once() -> None:
    with pytest.raises(OrderAlreadyPlaced):
        decide(fold([placed()]), place(external_id=None), T0)


def test_a_refund_by_amount_leaves_the_rest() -> None:
    (event,) = decide(fold([placed()]), refund(amount=5000, reason="damaged"), T0)
    assert isinstance(event, OrderRefunded)
    assert (event.amount, event.remaining, event.currency) == (5000, 17100, "CNY")


def test_a_refund_never_exceeds_what_is_left() -> None:
    given = [
        placed(),
        OrderRefunded(
            order_id="o-1",
            customer_id="c-1",
            refund_id="r-0",
            amount=20000,
            currency="CNY",
            remaining=2100,
        ),
    ]
    with pytest.raises(RefundExceedsRemaining) as refused:
        decide(fold(given), refund(amount=2101), T0)
    assert refused.value.field == "amount"
    (event,) = decide(fold(given), refund(amount=2100), T0)
    assert isinstance(event, OrderRefunded) and event.remaining == 0


def test_a_refund_by_lines_gives_back_those_pieces() -> None:
    (event,) = decide(fold([placed()]), refund(lines=[{"line_no": 2, "quantity": 2}]), T0)
    assert isinstance(event, OrderRefunded)
    assert event.amount == 3000
    assert [(x.line_no, x.quantity) for x in event.lines] == [(2, 2)]


def test_a_line_is_never_refunded_beyond_its_pieces() -> None:
    given = [placed(), *decide(fold([placed()]), refund(lines=[{"line_no": 2, "quantity": 2}]), T0)]
    with pytest.raises(RefundExceedsRemaining) as refused:
        decide(fold(given), refund(refund_id="r-2", lines=[{"line_no": 2, "quantity": 2}]), T0)
    assert refused.value.field == "lines.0.quantity"
    # The same line named twice in one refund counts both times.
    with pytest.raises(RefundExceedsRemaining):
        decide(
            fold([placed()]),
            refund(lines=[{"line_no": 1, "quantity": 2}, {"line_no": 1, "quantity": 1}]),
            T0,
        )


def test_a_refund_of_an_unknown_line_is_refused() -> None:
    with pytest.raises(UnknownOrderLine) as refused:
        decide(fold([placed()]), refund(lines=[{"line_no": 9, "quantity": 1}]), T0)
    assert refused.value.field == "lines.0.line_no"


def test_discounted_lines_are_refunded_at_their_share_and_the_last_takes_the_rest() -> None:
    discounted = placed(total=20000, discount=2100)  # lines are worth 22100
    (first,) = decide(fold([discounted]), refund(lines=[{"line_no": 2, "quantity": 1}]), T0)
    assert isinstance(first, OrderRefunded)
    assert first.amount == 1500 * 20000 // 22100
    (last,) = decide(
        fold([discounted, first]),
        refund(
            refund_id="r-2", lines=[{"line_no": 1, "quantity": 2}, {"line_no": 2, "quantity": 2}]
        ),
        T0,
    )
    assert isinstance(last, OrderRefunded)
    assert first.amount + last.amount == 20000 and last.remaining == 0


def test_refunds_by_amount_limit_a_later_refund_by_lines() -> None:
    given = [
        placed(),
        OrderRefunded(
            order_id="o-1",
            customer_id="c-1",
            refund_id="r-0",
            amount=21000,
            currency="CNY",
            remaining=1100,
        ),
    ]
    with pytest.raises(RefundExceedsRemaining) as refused:
        decide(fold(given), refund(lines=[{"line_no": 2, "quantity": 1}]), T0)
    assert refused.value.field == "lines"


def test_a_retried_refund_is_given_once() -> None:
    first = decide(fold([placed()]), refund(amount=5000), T0)
    assert decide(fold([placed(), *first]), refund(amount=5000), T0) == []
    with pytest.raises(RefundIdReused):
        decide(fold([placed(), *first]), refund(amount=6000), T0)


def test_a_cancelled_order_is_not_refunded() -> None:
    with pytest.raises(OrderIsCancelled):
        decide(
            fold([placed(), OrderCancelled(order_id="o-1", customer_id="c-1")]),
            refund(amount=1),
            T0,
        )


def test_cancelling_takes_the_whole_order_out_once() -> None:
    (event,) = decide(fold([placed()]), CancelOrder(order_id="o-1", reason="duplicate"), T0)
    assert isinstance(event, OrderCancelled)
    after = fold([placed(), event])
    assert after is not None and after.remaining == 0 and after.status == "cancelled"
    assert decide(after, CancelOrder(order_id="o-1"), T0) == []


def test_a_refunded_order_is_not_cancelled() -> None:
    given = [placed(), *decide(fold([placed()]), refund(amount=1), T0)]
    with pytest.raises(OrderHasRefunds):
        decide(fold(given), CancelOrder(order_id="o-1"), T0)


def test_commands_on_an_order_that_does_not_exist_are_not_found() -> None:
    with pytest.raises(OrderNotFound):
        decide(None, refund(amount=1), T0)


def test_money_is_never_a_float() -> None:
    with pytest.raises(ValueError):
        place(total=12.5)
    with pytest.raises(ValueError):
        refund(amount=1.0)
    with pytest.raises(ValueError):
        place(currency="XYZ")
