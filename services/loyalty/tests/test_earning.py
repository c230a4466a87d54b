"""Points earned from the pipeline's order events on the real broker: exactly once,
however often the events arrive."""

from __future__ import annotations

import asyncio

from libs.events.catalog.contacts import CustomerMergedInto, CustomerRegistered
from libs.events.catalog.pipeline import OrderCancelled, OrderPlaced, OrderRefunded
from libs.events.projection import ProjectionRunner, end_offsets
from services.loyalty.handlers.reactions import SOURCES, Earning
from services.loyalty.tests.conftest import T0, Api, eventually


def placed(order_id: str, customer_id: str, total: int) -> OrderPlaced:
    return OrderPlaced(
        order_id=order_id, customer_id=customer_id, currency="CNY", total=total, placed_at=T0
    )


async def test_an_order_earns_once_even_when_its_events_are_published_twice(api: Api) -> None:
    first = await api.publish("pipeline", "c-1", placed("o-1", "c-1", 25_000))
    refund = OrderRefunded(
        order_id="o-1",
        customer_id="c-1",
        refund_id="r-1",
        amount=10_000,
        currency="CNY",
        remaining=15_000,
    )
    second = await api.publish("pipeline", "c-1", refund)
    # A relay that re-sent everything after a crash: the same envelopes again.
    await api.send("crm.pipeline.events", [*first, *second])
    # The same order published again under a new event id (a republished topic).
    await api.publish("pipeline", "c-1", placed("o-1", "c-1", 25_000))
    marker = await api.publish("pipeline", "c-1", placed("o-2", "c-1", 100))

    await eventually(lambda: _has_line(api, "c-1", marker[0].id))
    lines = await api.ledger("c-1")
    earned = [line for line in lines if line["type"] == "crm.loyalty.points_earned.v1"]
    assert [(line["points"], line["source_event_id"]) for line in earned] == [
        (250, first[0].id),
        (1, marker[0].id),
    ]
    clawed = [line for line in lines if line["type"] == "crm.loyalty.points_clawed_back.v1"]
    assert [line["points"] for line in clawed] == [-100]
    account = await api.loyalty("c-1")
    assert account["balance"] == 250 - 100 + 1 == sum(line["points"] for line in lines)
    # Everything replayed from the start by a new consumer group changes nothing.
    await replay(api)
    assert await api.ledger("c-1") == lines


async def test_a_cancelled_order_takes_its_points_back(api: Api) -> None:
    await api.publish("pipeline", "c-2", placed("o-9", "c-2", 9_900))
    cancelled = await api.publish(
        "pipeline", "c-2", OrderCancelled(order_id="o-9", customer_id="c-2")
    )

    await eventually(lambda: _has_line(api, "c-2", cancelled[0].id))
    assert (await api.loyalty("c-2"))["balance"] == 0


async def test_a_merged_duplicates_points_and_later_orders_go_to_the_survivor(api: Api) -> None:
    for customer in ("dup", "keep"):
        await api.publish(
            "contacts",
            customer,
            CustomerRegistered(
                customer_id=customer, tenant_id="acme", kind="person", name="x", registered_at=T0
            ),
        )
    order = await api.publish("pipeline", "dup", placed("o-1", "dup", 10_000))
    await eventually(lambda: _has_line(api, "dup", order[0].id))
    await api.publish("contacts", "dup", CustomerMergedInto(customer_id="dup", survivor_id="keep"))
    # Topics are not ordered with each other: wait for the merge before the next order.
    await eventually(lambda: _merged_into(api, "dup", "keep"))
    later = await api.publish("pipeline", "dup", placed("o-2", "dup", 5_000))
    await eventually(lambda: _has_line(api, "keep", later[0].id))
    # The first order redelivered after the merge: the survivor knows it already.
    await api.send("crm.pipeline.events", order)
    marker = await api.publish("pipeline", "keep", placed("o-3", "keep", 100))
    await eventually(lambda: _has_line(api, "keep", marker[0].id))
    assert (await api.loyalty("keep"))["balance"] == 100 + 50 + 1
    assert (await api.loyalty("dup"))["balance"] == 0
    moved = await api.client.post("/api/v1/customers/dup/loyalty/check-ins", headers=api.auth())
    assert moved.status_code == 409 and moved.json()["survivor_id"] == "keep"
    before = [await api.ledger("keep"), await api.ledger("dup")]
    # A replay of both topics from the start by a new consumer group (a rebuild): every
    # event arrives again past the runtime's own record, and the ledgers refuse them.
    await replay(api)
    assert [await api.ledger("keep"), await api.ledger("dup")] == before


async def _merged_into(api: Api, duplicate_id: str, survivor_id: str) -> bool:
    return bool((await api.loyalty(duplicate_id))["merged_into"] == survivor_id)


async def _has_line(api: Api, customer_id: str, source_event_id: str) -> bool:
    response = await api.client.get(
        f"/api/v1/customers/{customer_id}/loyalty/ledger", headers=api.auth()
    )
    if response.status_code != 200:
        return False
    return any(line["source_event_id"] == source_event_id for line in response.json()["lines"])


async def replay(api: Api) -> None:
    """Every event on both topics again, through a new consumer group (generation 2)."""
    loyalty = api.app.state.loyalty
    runner = ProjectionRunner(Earning(loyalty, generation=2), loyalty.engine, api.kafka, SOURCES)
    targets = await end_offsets(api.kafka, runner.projection.topics)

    def caught_up() -> bool:
        return all(runner.progress.get(tp, 0) >= end for tp, end in targets.items() if end)

    await asyncio.wait_for(runner.run(asyncio.Event(), until=caught_up), timeout=60)
    assert sum(runner.progress.values()) >= len(api.published)
