"""Generated histories whose figures are known in closed form.

* cohort January: four customers (``jan-0`` .. ``jan-3``) who buy every month from
  January to June 2026, on the 10th, 1,000 each;
* cohort February: two customers (``feb-0``, ``feb-1``) who buy in February and March
  and then stop;
* ``refunded``: registered in March, one order of 500 on March 5th, refunded in full
  on March 20th (it counts as an order worth nothing);
* ``cancelled``: one order on April 2nd, cancelled on April 3rd (it never happened).
"""

from __future__ import annotations

from datetime import UTC, datetime

from libs.events.catalog.contacts import CustomerRegistered
from libs.events.catalog.pipeline import OrderCancelled, OrderPlaced, OrderRefunded
from services.analytics.tests.conftest import Api

JANUARY = [f"jan-{n}" for n in range(4)]
FEBRUARY = ["feb-0", "feb-1"]


def at(month: int, day: int) -> datetime:
    return datetime(2026, month, day, 12, 0, tzinfo=UTC)


def registered(customer_id: str, when: datetime, **extra: object) -> CustomerRegistered:
    return CustomerRegistered(
        customer_id=customer_id,
        tenant_id="acme",
        kind="person",
        name=customer_id,
        registered_at=when,
        **extra,  # type: ignore[arg-type]
    )


def order(customer_id: str, order_id: str, when: datetime, total: int = 1000) -> OrderPlaced:
    return OrderPlaced(
        order_id=order_id, customer_id=customer_id, currency="CNY", total=total, placed_at=when
    )


async def publish_history(api: Api, tenant: str = "acme") -> None:
    for c in JANUARY:
        await api.publish("contacts", c, registered(c, at(1, 2)), tenant=tenant, at=at(1, 2))
        await api.publish(
            "pipeline", c, *[order(c, f"{c}-{m}", at(m, 10)) for m in range(1, 7)], tenant=tenant
        )
    for c in FEBRUARY:
        await api.publish("contacts", c, registered(c, at(2, 1)), tenant=tenant, at=at(2, 1))
        await api.publish(
            "pipeline", c, *[order(c, f"{c}-{m}", at(m, 10)) for m in (2, 3)], tenant=tenant
        )
    await api.publish("contacts", "refunded", registered("refunded", at(3, 1)), tenant=tenant)
    await api.publish(
        "pipeline", "refunded", order("refunded", "r-1", at(3, 5), 500), tenant=tenant
    )
    await api.publish(
        "pipeline",
        "refunded",
        OrderRefunded(
            order_id="r-1",
            customer_id="refunded",
            refund_id="rf-1",
            amount=500,
            currency="CNY",
            remaining=0,
        ),
        tenant=tenant,
        at=at(3, 20),
    )
    await api.publish("contacts", "cancelled", registered("cancelled", at(4, 1)), tenant=tenant)
    await api.publish("pipeline", "cancelled", order("cancelled", "x-1", at(4, 2)), tenant=tenant)
    await api.publish(
        "pipeline",
        "cancelled",
        OrderCancelled(order_id="x-1", customer_id="cancelled"),
        tenant=tenant,
        at=at(4, 3),
    )
