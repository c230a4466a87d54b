"""One check for every projection that folds a batch its own way: ``apply_many`` over a
batch must leave the same rows as ``apply`` one event at a time.

A projection that writes only its own tables runs both paths into two generations of
itself in one database (each generation has tables of its own) and the rows are
compared with the generation taken out of the table names.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from libs.events.catalog import DomainEvent
from libs.events.checkpoints import create_runtime_tables
from libs.events.consumer import ReceivedEvent
from libs.events.envelope import EventEnvelope
from libs.events.projection import Projection

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def received(
    tenant: str,
    events: Sequence[tuple[str, DomainEvent]],
    *,
    repeat_every: int = 7,
    at: datetime = T0,
) -> list[ReceivedEvent]:
    """The events as a consumer hands them over (``(customer id, event)`` pairs, in
    order, each stamped ``at``); every ``repeat_every``-th one twice, as a redelivery
    brings it."""
    out = []
    for offset, (customer, fact) in enumerate(events):
        envelope = EventEnvelope(
            id=str(uuid.uuid4()),
            source="/crm/test",
            type=type(fact).type_name,
            subject=customer,
            time=at,
            tenantid=tenant,
            partitionkey=customer,
            sequence=1,
            data=fact.model_dump(mode="json"),
        )
        out.append(ReceivedEvent(envelope, fact, "t", 0, offset))
        if repeat_every and offset % repeat_every == 0:
            out.append(ReceivedEvent(envelope, fact, "t", 0, offset))
    return out


async def rows_of(engine: AsyncEngine, projection: Projection) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table of the projection, sorted, by the table's base name."""
    suffix = f"_g{projection.generation}"
    rows: dict[str, list[tuple[Any, ...]]] = {}
    async with engine.connect() as conn:
        for table in projection.metadata.sorted_tables:
            found = (await conn.execute(select(table))).all()
            rows[table.name.removesuffix(suffix)] = sorted((tuple(r) for r in found), key=repr)
    return rows


async def assert_batches_fold_as_single_events(
    engine: AsyncEngine,
    factory: Callable[[int], Projection],
    events: Sequence[ReceivedEvent],
    *,
    batch: int = 17,
) -> dict[str, list[tuple[Any, ...]]]:
    """Apply ``events`` one at a time into generation 1 and in batches of ``batch``
    into generation 2; assert both hold the same rows, and return them."""
    one, many = factory(1), factory(2)
    async with engine.begin() as conn:
        await conn.run_sync(create_runtime_tables)
        for projection in (one, many):
            await conn.run_sync(projection.metadata.create_all)
    # What the runner hands over: a redelivered event is filtered before it applies.
    fresh = list({(e.topic, e.partition, e.offset): e for e in events}.values())
    for event in fresh:
        async with engine.begin() as conn:
            await one.apply(conn, event)
    for start in range(0, len(fresh), batch):
        async with engine.begin() as conn:
            await many.apply_many(conn, fresh[start : start + batch])
    singly, batched = await rows_of(engine, one), await rows_of(engine, many)
    for table in singly:
        apart = set(batched[table]) ^ set(singly[table])
        assert batched[table] == singly[table], (table, sorted(apart, key=repr)[:6])
    return batched
