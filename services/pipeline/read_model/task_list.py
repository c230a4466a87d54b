"""Follow-up tasks and contracts as lists answer them ("my overdue follow-ups",
"a customer's active contracts"), written with their events."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, Column, Date, Index, Integer, String, Table, select
from sqlalchemy.ext.asyncio import AsyncConnection

from libs.platform.db import UtcDateTime, upsert_for
from services.pipeline.domain.contracts import Contract
from services.pipeline.domain.tasks import Task
from services.pipeline.read_model import metadata

tasks = Table(
    "pipeline_tasks",
    metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("task_id", String(64), primary_key=True),
    Column("customer_id", String(64)),
    Column("lead_id", String(64)),
    Column("deal_id", String(64)),
    Column("title", String(200), nullable=False),
    Column("due_at", UtcDateTime, nullable=False),
    Column("assignee_id", String(64), nullable=False),
    Column("status", String(12), nullable=False),
    Column("version", Integer, nullable=False),
)
Index("ix_pipeline_tasks_assignee", tasks.c.tenant_id, tasks.c.assignee_id, tasks.c.due_at)

contracts = Table(
    "pipeline_contracts",
    metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("contract_id", String(64), primary_key=True),
    Column("customer_id", String(64), nullable=False),
    Column("title", String(200), nullable=False),
    Column("value", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("starts_on", Date, nullable=False),
    Column("ends_on", Date, nullable=False),
    Column("auto_renew", Boolean, nullable=False),
    Column("terminated_on", Date),
    Column("version", Integer, nullable=False),
)
Index("ix_pipeline_contracts_customer", contracts.c.tenant_id, contracts.c.customer_id)


async def save_task(conn: AsyncConnection, tenant_id: str, task: Task) -> None:
    row = {
        "tenant_id": tenant_id,
        "task_id": task.id,
        "customer_id": task.customer_id,
        "lead_id": task.lead_id,
        "deal_id": task.deal_id,
        "title": task.title,
        "due_at": task.due_at,
        "assignee_id": task.assignee_id,
        "status": task.status,
        "version": task.version,
    }
    statement = upsert_for(conn)(tasks).values(row)
    await conn.execute(
        statement.on_conflict_do_update(
            index_elements=[tasks.c.tenant_id, tasks.c.task_id],
            set_={k: statement.excluded[k] for k in ("due_at", "status", "version")},
        )
    )


def task_view(task: Task) -> dict[str, Any]:
    return {
        "id": task.id,
        "customer_id": task.customer_id,
        "lead_id": task.lead_id,
        "deal_id": task.deal_id,
        "title": task.title,
        "due_at": task.due_at.isoformat(),
        "assignee_id": task.assignee_id,
        "status": task.status,
        "version": task.version,
    }


async def find_tasks(
    conn: AsyncConnection,
    tenant_id: str,
    *,
    assignee_id: str | None,
    due_before: datetime | None,
    status: str | None,
    customers: Sequence[str] | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Soonest due first."""
    query = select(tasks).where(tasks.c.tenant_id == tenant_id)
    if assignee_id is not None:
        query = query.where(tasks.c.assignee_id == assignee_id)
    if due_before is not None:
        query = query.where(tasks.c.due_at < due_before)
    if status is not None:
        query = query.where(tasks.c.status == status)
    if customers is not None:
        query = query.where(tasks.c.customer_id.in_(customers))
    query = query.order_by(tasks.c.due_at, tasks.c.task_id).limit(limit)
    return [
        {
            "id": r.task_id,
            "customer_id": r.customer_id,
            "lead_id": r.lead_id,
            "deal_id": r.deal_id,
            "title": r.title,
            "due_at": r.due_at.isoformat(),
            "assignee_id": r.assignee_id,
            "status": r.status,
            "version": int(r.version),
        }
        for r in await conn.execute(query)
    ]


async def save_contract(conn: AsyncConnection, tenant_id: str, contract: Contract) -> None:
    row = {
        "tenant_id": tenant_id,
        "contract_id": contract.id,
        "customer_id": contract.customer_id,
        "title": contract.title,
        "value": contract.value,
        "currency": contract.currency,
        "starts_on": contract.starts_on,
        "ends_on": contract.ends_on,
        "auto_renew": contract.auto_renew,
        "terminated_on": contract.terminated_on,
        "version": contract.version,
    }
    statement = upsert_for(conn)(contracts).values(row)
    await conn.execute(
        statement.on_conflict_do_update(
            index_elements=[contracts.c.tenant_id, contracts.c.contract_id],
            set_={
                k: statement.excluded[k] for k in ("value", "ends_on", "terminated_on", "version")
            },
        )
    )


def contract_view(contract: Contract, today: date) -> dict[str, Any]:
    return {
        "id": contract.id,
        "customer_id": contract.customer_id,
        "title": contract.title,
        "value": contract.value,
        "currency": contract.currency,
        "starts_on": contract.starts_on.isoformat(),
        "ends_on": contract.ends_on.isoformat(),
        "auto_renew": contract.auto_renew,
        "terminated_on": contract.terminated_on.isoformat() if contract.terminated_on else None,
        "status": contract.status(today),
        "version": contract.version,
    }


async def find_contracts(
    conn: AsyncConnection, tenant_id: str, customers: Sequence[str], today: date
) -> list[dict[str, Any]]:
    rows = await conn.execute(
        select(contracts)
        .where(contracts.c.tenant_id == tenant_id, contracts.c.customer_id.in_(customers))
        .order_by(contracts.c.ends_on.desc(), contracts.c.contract_id)
    )
    return [
        contract_view(
            Contract(
                id=r.contract_id,
                customer_id=r.customer_id,
                title=r.title,
                value=int(r.value),
                currency=r.currency,
                starts_on=r.starts_on,
                ends_on=r.ends_on,
                auto_renew=r.auto_renew,
                deal_id=None,
                terminated_on=r.terminated_on,
                version=int(r.version),
            ),
            today,
        )
        for r in rows
    ]
