"""The projection folds a batch (``apply_many``) into the same rows as one event at a
time (``apply``): the same random histories through both, on both databases."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Literal

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from libs.events.catalog import DomainEvent
from libs.events.catalog.contacts import (
    CustomerMergedInto,
    CustomerRegistered,
    CustomerTagged,
    InteractionLogged,
    ProfileChanged,
)
from libs.events.catalog.pipeline import OrderCancelled, OrderPlaced, OrderRefunded
from libs.events.catalog.tickets import NpsAnswered, TicketOpened
from services.analytics.read_model.projection import projection_factory
from testing.projections import T0, assert_batches_fold_as_single_events, received

CUSTOMERS = [f"c-{n}" for n in range(6)]


def history(seed: int) -> list[tuple[str, DomainEvent]]:
    """Registrations first, then orders, refunds, cancellations, tickets, surveys,
    interactions, tags and profile changes in a random order, and one merge."""
    rng = random.Random(seed)
    events: list[tuple[str, DomainEvent]] = [
        (
            c,
            CustomerRegistered(
                customer_id=c,
                tenant_id="acme",
                kind="person",
                name=c,
                registered_at=T0 + timedelta(days=n),
            ),
        )
        for n, c in enumerate(CUSTOMERS)
    ]
    placed: list[tuple[str, str]] = []  # (customer, order): each order placed once
    for n in range(80):
        c = rng.choice(CUSTOMERS)
        when = T0 + timedelta(days=rng.randrange(0, 200))
        kind = rng.random()
        if 0.4 <= kind < 0.55 and placed:
            c, order_id = rng.choice(placed)
        fact: DomainEvent
        if kind < 0.4 or not placed:
            order_id = f"o-{n}"
            placed.append((c, order_id))
            fact = OrderPlaced(
                order_id=order_id,
                customer_id=c,
                currency="CNY",
                total=rng.randrange(1, 100_000),
                placed_at=when,
            )
        elif kind < 0.5:
            fact = OrderRefunded(
                order_id=order_id,
                customer_id=c,
                refund_id=f"r-{n}",
                amount=rng.randrange(1, 50_000),
                currency="CNY",
                remaining=0,
            )
        elif kind < 0.55:
            fact = OrderCancelled(order_id=order_id, customer_id=c)
        elif kind < 0.65:
            fact = TicketOpened(
                ticket_id=f"t-{n}",
                customer_id=c,
                subject="late",
                channel="phone",
                category=rng.choice(["question", "complaint"]),
                priority="normal",
                opened_by="u-1",
            )
        elif kind < 0.75:
            score = rng.randrange(0, 11)
            group: Literal["promoter", "passive", "detractor"] = (
                "promoter" if score >= 9 else "passive" if score >= 7 else "detractor"
            )
            fact = NpsAnswered(survey_id=f"s-{n}", customer_id=c, score=score, group=group)
        elif kind < 0.85:
            fact = InteractionLogged(
                customer_id=c,
                interaction_id=f"i-{n}",
                channel="wechat",
                direction="inbound",
                by="u-1",
                occurred_at=when,
            )
        elif kind < 0.93:
            fact = CustomerTagged(customer_id=c, tag=rng.choice(["vip", "b2b"]))
        else:
            fact = ProfileChanged(customer_id=c, name=f"{c}-renamed")
        events.append((c, fact))
    events.append(("c-5", CustomerMergedInto(customer_id="c-5", survivor_id="c-0")))
    events.append(
        (
            "c-5",
            OrderPlaced(
                order_id="after-merge", customer_id="c-5", currency="CNY", total=700, placed_at=T0
            ),
        )
    )
    return events


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_a_batch_folds_into_the_rows_single_events_leave(
    any_engine: AsyncEngine, seed: int
) -> None:
    rows = await assert_batches_fold_as_single_events(
        any_engine, projection_factory, received("acme", history(seed))
    )
    # Something was written, or the comparison would prove nothing.
    assert rows["analytics_customers"] and rows["analytics_orders"]
