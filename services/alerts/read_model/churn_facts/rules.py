"""The tenant's churn rules in force (the defaults until it saves its own)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from libs.events.catalog.alerts import ChurnRules
from libs.platform.db import upsert_into as insert
from services.alerts.domain.rules import check_rules, default_rules
from services.alerts.read_model.churn_facts.tables import rules_table


async def rules_of(conn: AsyncConnection, tenant_id: str) -> tuple[ChurnRules, int]:
    row = (
        await conn.execute(
            select(rules_table.c.rules, rules_table.c.version).where(
                rules_table.c.tenant_id == tenant_id
            )
        )
    ).one_or_none()
    if row is None:
        return default_rules(), 0
    return check_rules(ChurnRules.model_validate(row.rules)), int(row.version)


async def save_rules(
    conn: AsyncConnection, tenant_id: str, rules: ChurnRules, version: int, at: datetime
) -> None:
    stmt = insert(conn, rules_table).values(
        tenant_id=tenant_id, rules=rules.model_dump(mode="json"), version=version, updated_at=at
    )
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["tenant_id"],
            set_={"rules": stmt.excluded.rules, "version": version, "updated_at": at},
        )
    )
