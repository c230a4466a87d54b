"""Handlers of follow-up tasks and contracts: the same load, decide, append path as
orders and deals (``handlers/__init__.py``), each in one transaction."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from typing import Any, Protocol, TypeVar

from libs.events.catalog import DomainEvent
from libs.events.catalog.pipeline import LeadCaptured
from libs.events.write_path import new_events
from services.pipeline.commands import (
    CompleteTask,
    CreateTask,
    RenewContract,
    RescheduleTask,
    SignContract,
    TerminateContract,
)
from services.pipeline.domain import contracts, deals, tasks
from services.pipeline.domain.errors import UnknownReference
from services.pipeline.handlers import (
    Pipeline,
    Written,
    read_events,
)
from services.pipeline.read_model import task_list

S = TypeVar("S", bound="Versioned")


class Versioned(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def version(self) -> int: ...


async def _write(
    pipeline: Pipeline,
    tenant_id: str,
    stream_id: str,
    *,
    expected: int | None,
    fold: Callable[[Iterable[DomainEvent]], S | None],
    decide: Callable[[S | None, datetime], list[DomainEvent]],
    partition_key: Callable[[S], str],
    save: Callable[[Any, S], Awaitable[None]],
) -> Written:
    async def attempt() -> Written:
        now = pipeline.clock()
        async with pipeline.engine.begin() as conn:
            history = await read_events(pipeline, conn, tenant_id, stream_id)
            state = fold(history)
            if state is not None:
                pipeline.check_version(stream_id, expected, state.version)
            events = decide(state, now)
            if not events:
                assert state is not None
                return Written(stream_id, state.version)
            after = fold([*history, *events])
            assert after is not None
            version = await pipeline.store.append(
                tenant_id,
                stream_id,
                state.version if state else 0,
                new_events(events, partition_key(after), now),
                conn=conn,
            )
            await save(conn, after)
        pipeline.appended(len(events))
        return Written(stream_id, version, created=True)

    return await pipeline.retrying(stream_id, expected, attempt)


# --- follow-up tasks -------------------------------------------------------------------


async def create_task(
    pipeline: Pipeline, tenant_id: str, command: CreateTask, *, bearer: str | None
) -> Written:
    """A task about a customer, a lead or a deal of the tenant; a deal's task is about
    the deal's customer too, so it shows with the customer's follow-ups."""
    update: dict[str, Any] = {}
    if command.customer_id is not None:
        update["customer_id"] = await pipeline.directory.require(
            tenant_id, command.customer_id, bearer
        )
    if command.deal_id is not None:
        async with pipeline.engine.connect() as conn:
            deal = deals.fold(await read_events(pipeline, conn, tenant_id, command.deal_id))
        if deal is None:
            raise UnknownReference("deal_id", "deal", command.deal_id)
        update.setdefault("customer_id", deal.customer_id)
    if command.lead_id is not None:
        async with pipeline.engine.connect() as conn:
            history = await read_events(pipeline, conn, tenant_id, command.lead_id)
        if not history or not isinstance(history[0], LeadCaptured):
            raise UnknownReference("lead_id", "lead", command.lead_id)
    command = command.model_copy(update=update)

    def key(task: tasks.Task) -> str:
        return task.customer_id or task.lead_id or task.id

    return await _write(
        pipeline,
        tenant_id,
        command.task_id,
        expected=None,
        fold=tasks.fold,
        decide=lambda state, now: tasks.decide(state, command, now),
        partition_key=key,
        save=lambda conn, task: task_list.save_task(conn, tenant_id, task),
    )


async def change_task(
    pipeline: Pipeline,
    tenant_id: str,
    command: RescheduleTask | CompleteTask,
    *,
    expected: int | None,
) -> Written:
    return await _write(
        pipeline,
        tenant_id,
        command.task_id,
        expected=expected,
        fold=tasks.fold,
        decide=lambda state, now: tasks.decide(state, command, now),
        partition_key=lambda task: task.customer_id or task.lead_id or task.id,
        save=lambda conn, task: task_list.save_task(conn, tenant_id, task),
    )


async def task(pipeline: Pipeline, tenant_id: str, task_id: str) -> tasks.Task:
    async with pipeline.engine.connect() as conn:
        state = tasks.fold(await read_events(pipeline, conn, tenant_id, task_id))
    if state is None:
        raise tasks.TaskNotFound(task_id)
    return state


# --- contracts -------------------------------------------------------------------------


async def sign_contract(
    pipeline: Pipeline, tenant_id: str, command: SignContract, *, bearer: str | None
) -> Written:
    customer_id = await pipeline.directory.require(tenant_id, command.customer_id, bearer)
    command = command.model_copy(update={"customer_id": customer_id})
    return await _write(
        pipeline,
        tenant_id,
        command.contract_id,
        expected=None,
        fold=contracts.fold,
        decide=lambda state, now: contracts.decide(state, command, now),
        partition_key=lambda contract: contract.customer_id,
        save=lambda conn, contract: task_list.save_contract(conn, tenant_id, contract),
    )


async def change_contract(
    pipeline: Pipeline,
    tenant_id: str,
    command: RenewContract | TerminateContract,
    *,
    expected: int | None,
) -> Written:
    return await _write(
        pipeline,
        tenant_id,
        command.contract_id,
        expected=expected,
        fold=contracts.fold,
        decide=lambda state, now: contracts.decide(state, command, now),
        partition_key=lambda contract: contract.customer_id,
        save=lambda conn, contract: task_list.save_contract(conn, tenant_id, contract),
    )


async def contract(pipeline: Pipeline, tenant_id: str, contract_id: str) -> contracts.Contract:
    async with pipeline.engine.connect() as conn:
        state = contracts.fold(await read_events(pipeline, conn, tenant_id, contract_id))
    if state is None:
        raise contracts.ContractNotFound(contract_id)
    return state
