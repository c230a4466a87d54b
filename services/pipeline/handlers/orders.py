"""Orders: placed, refunded, cancelled; the load, decide, append path of
``handlers/__init__.py``."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from libs.events.write_path import new_events
from services.pipeline.commands import (
    CancelOrder,
    PlaceOrder,
    RefundOrder,
)
from services.pipeline.domain import orders
from services.pipeline.handlers import (
    Pipeline,
    Written,
    read_events,
)
from services.pipeline.read_model import order_list


async def place_order(
    pipeline: Pipeline, tenant_id: str, command: PlaceOrder, *, bearer: str | None
) -> Written:
    """A new order, or the one already holding the command's external id."""
    customer_id = await pipeline.directory.require(tenant_id, command.customer_id, bearer)
    command = command.model_copy(update={"customer_id": customer_id})

    async def attempt() -> Written:
        now = pipeline.clock()
        async with pipeline.engine.begin() as conn:
            stream_id = command.order_id
            if command.external_id is not None:
                holder = await order_list.order_of_external_id(conn, tenant_id, command.external_id)
                stream_id = holder or stream_id
            state = orders.fold(await read_events(pipeline, conn, tenant_id, stream_id))
            events = orders.decide(state, command, now)
            if not events:
                assert state is not None
                return Written(state.id, state.version)
            if command.external_id is not None:
                await order_list.claim_external_id(
                    conn, tenant_id, command.external_id, command.order_id
                )
            version = await pipeline.store.append(
                tenant_id, command.order_id, 0, new_events(events, customer_id, now), conn=conn
            )
            placed = orders.fold(events)
            assert placed is not None
            await order_list.save_order(conn, tenant_id, placed, new=True)
        pipeline.appended(len(events))
        return Written(command.order_id, version, created=True)

    return await pipeline.retrying(command.order_id, None, attempt)


async def change_order(
    pipeline: Pipeline,
    tenant_id: str,
    command: RefundOrder | CancelOrder,
    *,
    expected: int | None = None,
) -> Written:
    order_id = command.order_id

    async def attempt() -> Written:
        now = pipeline.clock()
        async with pipeline.engine.begin() as conn:
            history = await read_events(pipeline, conn, tenant_id, order_id)
            state = orders.fold(history)
            if state is not None:
                pipeline.check_version(order_id, expected, state.version)
            events = orders.decide(state, command, now)
            assert state is not None  # decide refuses a missing order
            if not events:
                return Written(order_id, state.version)
            version = await pipeline.store.append(
                tenant_id,
                order_id,
                state.version,
                new_events(events, state.customer_id, now),
                conn=conn,
            )
            after = orders.fold([*history, *events])
            assert after is not None
            await order_list.save_order(conn, tenant_id, after, new=False)
        pipeline.appended(len(events))
        return Written(order_id, version, created=True)

    return await pipeline.retrying(order_id, expected, attempt)


async def order(pipeline: Pipeline, tenant_id: str, order_id: str) -> orders.Order:
    async with pipeline.engine.connect() as conn:
        state = orders.fold(await read_events(pipeline, conn, tenant_id, order_id))
    if state is None:
        raise orders.OrderNotFound(order_id)
    return state


def order_view(order: orders.Order) -> dict[str, Any]:
    return {
        "id": order.id,
        "customer_id": order.customer_id,
        "external_id": order.external_id,
        "currency": order.currency,
        "lines": [
            {**line.model_dump(), "refunded_quantity": order.refunded_pieces.get(line.line_no, 0)}
            for line in order.lines
        ],
        "total": order.total,
        "refunded": order.refunded,
        "remaining": order.remaining,
        "status": order.status,
        "placed_at": order.placed_at.isoformat(),
        "refunds": [
            {
                "id": refund.refund_id,
                "amount": refund.amount,
                "lines": [line.model_dump() for line in refund.lines],
                "reason": refund.reason,
            }
            for refund in order.refunds.values()
        ],
        "version": order.version,
    }


async def forget_customer(
    pipeline: Pipeline, conn: AsyncConnection, tenant_id: str, customer_id: str
) -> None:
    """A customer erased in contacts: the reasons given for its orders' refunds and
    cancellations are sealed with its key, which goes (they then read as empty)."""
    await pipeline.store.erase_personal_data(tenant_id, customer_id, conn=conn)
