"""Leads as lists answer them, and the turns of the assignment rules.

``pipeline_leads`` holds a lead's own contact fields (the one place the pipeline
keeps personal data); erasure scrubs them here as the vault makes them unreadable
in the history.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column, Index, Integer, String, Table, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from libs.platform.db import UtcDateTime, upsert_for
from services.pipeline.domain.leads import OPEN, Lead
from services.pipeline.read_model import metadata

leads = Table(
    "pipeline_leads",
    metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("lead_id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("company", String(200)),
    Column("email", String(254)),
    Column("phone", String(40)),
    Column("source", String(16), nullable=False),
    Column("territory", String(64)),
    Column("industry", String(64)),
    Column("owner_id", String(64)),
    Column("assigned_by", String(100)),
    Column("status", String(16), nullable=False),
    Column("customer_id", String(64)),
    Column("captured_at", UtcDateTime, nullable=False),
    Column("version", Integer, nullable=False),
)
Index("ix_pipeline_leads_owner", leads.c.tenant_id, leads.c.owner_id, leads.c.status)
Index("ix_pipeline_leads_customer", leads.c.tenant_id, leads.c.customer_id)

turns = Table(
    "pipeline_assignment_turns",
    metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("rule_index", Integer, primary_key=True),
    Column("last_owner_id", String(64), nullable=False),
)

PERSONAL = ("name", "company", "email", "phone")


async def save_lead(
    conn: AsyncConnection, tenant_id: str, lead: Lead, captured_at: datetime | None = None
) -> None:
    row = {
        "tenant_id": tenant_id,
        "lead_id": lead.id,
        "name": lead.name,
        "company": lead.company,
        "email": lead.email,
        "phone": lead.phone,
        "source": lead.source,
        "territory": lead.territory,
        "industry": lead.industry,
        "owner_id": lead.owner_id,
        "assigned_by": lead.assigned_by,
        "status": lead.status,
        "customer_id": lead.customer_id,
        "version": lead.version,
    }
    if captured_at is not None:
        statement = upsert_for(conn)(leads).values({**row, "captured_at": captured_at})
        await conn.execute(statement)
        return
    changing = ("owner_id", "assigned_by", "status", "customer_id", "version")
    await conn.execute(
        update(leads)
        .where(leads.c.tenant_id == tenant_id, leads.c.lead_id == lead.id)
        .values({k: row[k] for k in changing})
    )


async def open_leads_per_owner(conn: AsyncConnection, tenant_id: str) -> dict[str, int]:
    rows = await conn.execute(
        select(leads.c.owner_id, func.count())
        .where(
            leads.c.tenant_id == tenant_id,
            leads.c.status.in_(OPEN),
            leads.c.owner_id.is_not(None),
        )
        .group_by(leads.c.owner_id)
    )
    return {owner: int(count) for owner, count in rows}


async def last_assigned(conn: AsyncConnection, tenant_id: str) -> dict[int, str]:
    rows = await conn.execute(
        select(turns.c.rule_index, turns.c.last_owner_id).where(turns.c.tenant_id == tenant_id)
    )
    return {int(i): owner for i, owner in rows}


async def record_turn(conn: AsyncConnection, tenant_id: str, index: int, owner_id: str) -> None:
    statement = upsert_for(conn)(turns).values(
        tenant_id=tenant_id, rule_index=index, last_owner_id=owner_id
    )
    await conn.execute(
        statement.on_conflict_do_update(
            index_elements=[turns.c.tenant_id, turns.c.rule_index],
            set_={"last_owner_id": owner_id},
        )
    )


async def forget_turns(conn: AsyncConnection, tenant_id: str) -> None:
    """New rules start their turns afresh (rule 0 may be another team now)."""
    await conn.execute(delete(turns).where(turns.c.tenant_id == tenant_id))


async def leads_of_customer(conn: AsyncConnection, tenant_id: str, customer_id: str) -> list[str]:
    rows = await conn.execute(
        select(leads.c.lead_id).where(
            leads.c.tenant_id == tenant_id, leads.c.customer_id == customer_id
        )
    )
    return [r[0] for r in rows]


async def scrub(conn: AsyncConnection, tenant_id: str, lead_id: str) -> None:
    await conn.execute(
        update(leads)
        .where(leads.c.tenant_id == tenant_id, leads.c.lead_id == lead_id)
        .values(name="", company=None, email=None, phone=None)
    )


def lead_row_view(row: Any) -> dict[str, Any]:
    return {
        "id": row.lead_id,
        "name": row.name,
        "company": row.company,
        "email": row.email,
        "phone": row.phone,
        "source": row.source,
        "territory": row.territory,
        "industry": row.industry,
        "owner_id": row.owner_id,
        "assigned_by": row.assigned_by,
        "status": row.status,
        "customer_id": row.customer_id,
        "captured_at": row.captured_at.isoformat(),
        "version": int(row.version),
    }


async def find_leads(
    conn: AsyncConnection,
    tenant_id: str,
    *,
    status: str | None,
    owner_id: str | None,
    queued: bool,
    source: str | None,
    before: tuple[datetime, str] | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Newest capture first, after the cursor ``before``."""
    query = select(leads).where(leads.c.tenant_id == tenant_id)
    if status is not None:
        query = query.where(leads.c.status == status)
    if owner_id is not None:
        query = query.where(leads.c.owner_id == owner_id)
    if queued:
        query = query.where(leads.c.owner_id.is_(None))
    if source is not None:
        query = query.where(leads.c.source == source)
    if before is not None:
        at, lead_id = before
        query = query.where(
            or_(
                leads.c.captured_at < at,
                (leads.c.captured_at == at) & (leads.c.lead_id < lead_id),
            )
        )
    query = query.order_by(leads.c.captured_at.desc(), leads.c.lead_id.desc()).limit(limit)
    return [lead_row_view(r) for r in await conn.execute(query)]
