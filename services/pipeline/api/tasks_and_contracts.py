"""Follow-up tasks and contracts under /api/v1 (the conventions of ``conventions.py``)."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from uuid import uuid4

from fastapi import Depends, Query, Request, Response, status
from pydantic import BaseModel

from libs.auth import Principal, require
from libs.platform.dependencies import Body, IfMatch, bearer_token, command_from, etag_for
from libs.platform.routing import ServiceRouter
from libs.platform.types import PERSON_PATTERN, Day, Instant
from services.pipeline.api.conventions import (
    MAX_PAGE,
    ItemId,
    PipelineDep,
    Reader,
    WrittenItem,
    written,
)
from services.pipeline.commands import (
    ID_PATTERN,
    CompleteTask,
    CreateTask,
    MinorUnits,
    RenewContract,
    RescheduleTask,
    SignContract,
    TerminateContract,
)
from services.pipeline.handlers import tasks_and_contracts as handlers
from services.pipeline.read_model import task_list

router = ServiceRouter(prefix="/api/v1", tags=["pipeline"])

TaskWriter = Annotated[Principal, Depends(require("tasks:write"))]
ContractWriter = Annotated[Principal, Depends(require("contracts:write"))]


def _caller(principal: Principal) -> str:
    return principal.subject[:64]


# --- follow-up tasks -------------------------------------------------------------------


class TaskBody(Body):
    customer_id: str | None = None
    lead_id: str | None = None
    deal_id: str | None = None
    title: str
    due_at: Instant
    # The caller when left out.
    assignee_id: str | None = None


class RescheduleBody(Body):
    due_at: Instant


class CompleteBody(Body):
    note: str = ""


class TaskPage(BaseModel):
    items: list[dict[str, Any]]


@router.post("/tasks", status_code=status.HTTP_201_CREATED)
async def create_task(
    body: TaskBody,
    request: Request,
    response: Response,
    principal: TaskWriter,
    pipeline: PipelineDep,
) -> WrittenItem:
    """A follow-up about a customer, a lead or a deal (other services create theirs here)."""
    data = body.model_dump(exclude_unset=True)
    data.setdefault("assignee_id", _caller(principal))
    command = command_from(CreateTask, data, task_id=str(uuid4()), created_by=_caller(principal))
    result = await handlers.create_task(
        pipeline, principal.tenant_id, command, bearer=bearer_token(request)
    )
    response.headers["Location"] = f"{router.prefix}/tasks/{result.id}"
    return written(response, result)


@router.get("/tasks/{task_id}")
async def get_task(
    task_id: ItemId, response: Response, principal: Reader, pipeline: PipelineDep
) -> dict[str, Any]:
    found = await handlers.task(pipeline, principal.tenant_id, task_id)
    response.headers["ETag"] = etag_for(found.version)
    return task_list.task_view(found)


@router.post("/tasks/{task_id}/reschedule")
async def reschedule_task(
    task_id: ItemId,
    body: RescheduleBody,
    response: Response,
    principal: TaskWriter,
    pipeline: PipelineDep,
    expected: IfMatch,
) -> WrittenItem:
    command = command_from(RescheduleTask, body.model_dump(), task_id=task_id)
    result = await handlers.change_task(pipeline, principal.tenant_id, command, expected=expected)
    return written(response, result)


@router.post("/tasks/{task_id}/complete")
async def complete_task(
    task_id: ItemId,
    body: CompleteBody,
    response: Response,
    principal: TaskWriter,
    pipeline: PipelineDep,
    expected: IfMatch,
) -> WrittenItem:
    command = command_from(CompleteTask, body.model_dump(), task_id=task_id, by=_caller(principal))
    result = await handlers.change_task(pipeline, principal.tenant_id, command, expected=expected)
    return written(response, result)


@router.get("/tasks", responses={404: {"description": "No such customer (customer_id)"}})
async def find_tasks(
    request: Request,
    principal: Reader,
    pipeline: PipelineDep,
    assignee: Annotated[str | None, Query(pattern=PERSON_PATTERN)] = None,
    due_before: Annotated[Instant | None, Query()] = None,
    task_status: Annotated[Literal["open", "completed"] | None, Query(alias="status")] = None,
    customer_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
) -> TaskPage:
    """Soonest due first. "My overdue follow-ups" are
    ``assignee=<me>&status=open&due_before=<now>``."""
    records = None
    if customer_id is not None:
        records = await pipeline.directory.records(
            principal.tenant_id, customer_id, bearer_token(request)
        )
    async with pipeline.engine.connect() as conn:
        items = await task_list.find_tasks(
            conn,
            principal.tenant_id,
            assignee_id=assignee,
            due_before=due_before,
            status=task_status,
            customers=records,
            limit=limit,
        )
    return TaskPage(items=items)


# --- contracts -------------------------------------------------------------------------


class ContractBody(Body):
    customer_id: str
    title: str
    value: MinorUnits
    currency: str
    starts_on: Day
    ends_on: Day
    auto_renew: bool = False
    deal_id: str | None = None


class RenewBody(Body):
    ends_on: Day
    value: MinorUnits | None = None


class TerminateBody(Body):
    reason: str
    terminated_on: Day | None = None


class ContractPage(BaseModel):
    items: list[dict[str, Any]]


@router.post("/contracts", status_code=status.HTTP_201_CREATED)
async def sign_contract(
    body: ContractBody,
    request: Request,
    response: Response,
    principal: ContractWriter,
    pipeline: PipelineDep,
) -> WrittenItem:
    command = command_from(
        SignContract, body.model_dump(exclude_unset=True), contract_id=str(uuid4())
    )
    result = await handlers.sign_contract(
        pipeline, principal.tenant_id, command, bearer=bearer_token(request)
    )
    response.headers["Location"] = f"{router.prefix}/contracts/{result.id}"
    return written(response, result)


@router.get("/contracts/{contract_id}")
async def get_contract(
    contract_id: ItemId, response: Response, principal: Reader, pipeline: PipelineDep
) -> dict[str, Any]:
    found = await handlers.contract(pipeline, principal.tenant_id, contract_id)
    response.headers["ETag"] = etag_for(found.version)
    return task_list.contract_view(found, pipeline.clock().date())


@router.post("/contracts/{contract_id}/renew")
async def renew_contract(
    contract_id: ItemId,
    body: RenewBody,
    response: Response,
    principal: ContractWriter,
    pipeline: PipelineDep,
    expected: IfMatch,
) -> WrittenItem:
    command = command_from(
        RenewContract, body.model_dump(exclude_unset=True), contract_id=contract_id
    )
    result = await handlers.change_contract(
        pipeline, principal.tenant_id, command, expected=expected
    )
    return written(response, result)


@router.post("/contracts/{contract_id}/terminate")
async def terminate_contract(
    contract_id: ItemId,
    body: TerminateBody,
    response: Response,
    principal: ContractWriter,
    pipeline: PipelineDep,
    expected: IfMatch,
) -> WrittenItem:
    command = command_from(
        TerminateContract, body.model_dump(exclude_unset=True), contract_id=contract_id
    )
    result = await handlers.change_contract(
        pipeline, principal.tenant_id, command, expected=expected
    )
    return written(response, result)


@router.get("/customers/{customer_id}/contracts")
async def customer_contracts(
    customer_id: ItemId, request: Request, principal: Reader, pipeline: PipelineDep
) -> ContractPage:
    """The customer's contracts (and merged records'), latest end first."""
    records = await pipeline.directory.records(
        principal.tenant_id, customer_id, bearer_token(request)
    )
    async with pipeline.engine.connect() as conn:
        items = await task_list.find_contracts(
            conn, principal.tenant_id, records, pipeline.clock().date()
        )
    return ContractPage(items=items)
