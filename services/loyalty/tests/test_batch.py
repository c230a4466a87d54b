"""The batch path (``handlers/batch.py``) and the one-event path decide the same
ledgers from the same events: one table of histories run through both."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

from libs.events.catalog import DomainEvent
from libs.events.catalog.contacts import CustomerReferred
from libs.events.catalog.pipeline import OrderCancelled, OrderPlaced, OrderRefunded
from libs.events.catalog.tickets import NpsAnswered
from services.loyalty.handlers.reactions import Earning
from services.loyalty.tests.conftest import T0, Api
from services.loyalty.tests.test_bonus_reactions import assert_lines_add_up, set_bonuses
from testing.projections import received

CUSTOMERS = ["c-1", "c-2", "c-3", "c-4", "c-5"]


def history(seed: int) -> list[tuple[str, DomainEvent]]:
    """Orders, partial refunds, cancellations, survey answers and a referral, in a
    random order per customer's life, some of them twice."""
    rng = random.Random(seed)
    events: list[tuple[str, DomainEvent]] = [
        ("c-2", CustomerReferred(customer_id="c-2", referrer_id="c-1")),
    ]
    for n in range(40):
        customer = rng.choice(CUSTOMERS)
        kind = rng.random()
        order_id = f"o-{customer}-{rng.randrange(4)}"
        fact: DomainEvent
        if kind < 0.5:
            fact = OrderPlaced(
                order_id=order_id,
                customer_id=customer,
                currency="CNY",
                total=rng.randrange(1, 500_000),
                placed_at=T0 + timedelta(days=rng.randrange(-30, 30)),
            )
        elif kind < 0.7:
            fact = OrderRefunded(
                order_id=order_id,
                customer_id=customer,
                refund_id=f"r-{n}",
                amount=rng.randrange(1, 200_000),
                currency="CNY",
                remaining=0,
            )
        elif kind < 0.8:
            fact = OrderCancelled(order_id=order_id, customer_id=customer)
        else:
            fact = NpsAnswered(
                survey_id=f"sv-{rng.randrange(3)}", customer_id=customer, score=9, group="promoter"
            )
        events.append((customer, fact))
    return events


def shape(lines: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [
        (
            line["version"],
            line["type"],
            line["points"],
            line["balance_after"],
            line["detail"].get("reason"),
            line["detail"].get("order_id"),
        )
        for line in lines
    ]


async def test_a_batch_decides_the_same_ledgers_as_one_event_at_a_time(api: Api) -> None:
    loyalty = api.app.state.loyalty
    earning = Earning(loyalty)
    for seed in range(3):
        one, bulk = f"one-{seed}", f"bulk-{seed}"
        for tenant in (one, bulk):
            await set_bonuses(api, tenant)
        events = history(seed)
        async with loyalty.engine.begin() as conn:
            for event in received(one, events, at=T0):
                await earning.apply(conn, event)
        batch = received(bulk, events, at=T0)
        for start in range(0, len(batch), 17):
            async with loyalty.engine.begin() as conn:
                await earning.apply_many(conn, batch[start : start + 17])
        for customer in CUSTOMERS:
            ones = await api.ledger(customer, tenant=one)
            bulks = await api.ledger(customer, tenant=bulk)
            assert shape(ones) == shape(bulks), customer
            assert_lines_add_up(bulks)
            assert (await api.loyalty(customer, one))["balance"] == (
                await api.loyalty(customer, bulk)
            )["balance"]
