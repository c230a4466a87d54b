"""Repurchase rate, order frequency, average order value and historic CLV.

Each is a fold of per-customer sales figures (``CustomerSales``), computed by the
read model from the orders as known at ``as_of``: an order cancelled by then never
happened; refunds known by then are taken off the order they refund (so a fully
refunded order counts as an order worth nothing). The population is the customers
with at least one order placed in the window ``[start, end]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from statistics import quantiles

from services.analytics.domain.figure import Answer, share


@dataclass(frozen=True, slots=True)
class CustomerSales:
    """One customer's orders as known at ``as_of``: in the window, and over its
    lifetime up to the window's end (amounts in minor units, net of refunds)."""

    customer_id: str
    orders_in_window: int
    net_in_window: int
    lifetime_orders: int
    lifetime_net: int
    first_order_at: datetime | None
    last_order_at: datetime | None


def buyers(sales: Sequence[CustomerSales]) -> list[CustomerSales]:
    return sorted((s for s in sales if s.orders_in_window > 0), key=lambda s: s.customer_id)


def repurchase_rate(sales: Sequence[CustomerSales]) -> Answer:
    population = buyers(sales)
    repeat = [s for s in population if s.orders_in_window >= 2]
    return Answer(
        "repurchase-rate",
        {
            "value": share(len(repeat), len(population)),
            "repeat_customers": len(repeat),
            "customers": len(population),
        },
        "customers with two or more orders placed in the window / customers with at least "
        "one; cancelled orders do not count",
        customers=[
            {
                "customer_id": s.customer_id,
                "orders": s.orders_in_window,
                "repeat": s.orders_in_window >= 2,
            }
            for s in population
        ],
    )


def order_frequency(sales: Sequence[CustomerSales]) -> Answer:
    population = buyers(sales)
    orders = sum(s.orders_in_window for s in population)
    return Answer(
        "order-frequency",
        {"value": share(orders, len(population)), "orders": orders, "customers": len(population)},
        "orders placed in the window / customers with at least one; cancelled orders do not count",
        customers=[
            {"customer_id": s.customer_id, "orders": s.orders_in_window} for s in population
        ],
    )


def average_order_value(sales: Sequence[CustomerSales]) -> Answer:
    population = buyers(sales)
    orders = sum(s.orders_in_window for s in population)
    net = sum(s.net_in_window for s in population)
    return Answer(
        "average-order-value",
        {"value": share(net, orders), "net_revenue": net, "orders": orders},
        "net revenue of the orders placed in the window (totals less the refunds known at "
        "as_of) / those orders; cancelled orders do not count; minor units",
        customers=[
            {
                "customer_id": s.customer_id,
                "orders": s.orders_in_window,
                "net_revenue": s.net_in_window,
            }
            for s in population
        ],
    )


def historic_clv(sales: Sequence[CustomerSales]) -> Answer:
    population = buyers(sales)
    values = [s.lifetime_net for s in population]
    total = sum(values)
    cuts = quantiles(values, n=10, method="inclusive") if len(values) >= 2 else values * 9
    return Answer(
        "clv",
        {
            "value": share(total, len(population)),
            "net_revenue": total,
            "customers": len(population),
            "distribution": {
                "p10": cuts[0] if cuts else None,
                "p50": cuts[4] if cuts else None,
                "p90": cuts[8] if cuts else None,
                "min": min(values, default=None),
                "max": max(values, default=None),
            },
        },
        "historic CLV: each customer's net revenue (order totals less refunds known at "
        "as_of, cancelled orders left out) from its first order to the window's end, "
        "averaged over the customers with an order in the window",
        customers=[
            {
                "customer_id": s.customer_id,
                "lifetime_net_revenue": s.lifetime_net,
                "lifetime_orders": s.lifetime_orders,
                "first_order_at": s.first_order_at.isoformat() if s.first_order_at else None,
            }
            for s in population
        ],
    )
