"""Deals as the funnel reads them: each deal's row and each stay of a deal in a stage.

Written in the same transaction as the deal's events. A stay starts when the deal
enters a stage and ends when it leaves; the funnel counts the deals that entered
each stage in a period, how many of them went further, how long finished stays
lasted, how many closed deals were won, and the open deals' weighted forecast.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Column, Index, Integer, String, Table, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from libs.events.catalog.pipeline import DealStage
from libs.platform.db import UtcDateTime
from services.pipeline.domain.deals import Deal
from services.pipeline.read_model import metadata

deals = Table(
    "pipeline_deals",
    metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("deal_id", String(64), primary_key=True),
    Column("customer_id", String(64), nullable=False),
    Column("owner_id", String(64)),
    Column("title", String(200), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("stage", String(64), nullable=False),
    Column("probability", Integer, nullable=False),
    Column("status", String(8), nullable=False),
    Column("opened_at", UtcDateTime, nullable=False),
    Column("version", Integer, nullable=False),
)
Index("ix_pipeline_deals_customer", deals.c.tenant_id, deals.c.customer_id)

stays = Table(
    "pipeline_deal_stays",
    metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("deal_id", String(64), primary_key=True),
    # The deal's version that entered the stage: a deal may enter a stage twice.
    Column("entered_version", Integer, primary_key=True),
    Column("stage", String(64), nullable=False),
    Column("owner_id", String(64)),
    Column("amount", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("entered_at", UtcDateTime, nullable=False),
    Column("left_at", UtcDateTime),
)
Index("ix_pipeline_deal_stays_entered", stays.c.tenant_id, stays.c.entered_at)


def _deal_row(tenant_id: str, deal: Deal, opened_at: datetime) -> dict[str, Any]:
    return {
        "tenant_id": tenant_id,
        "deal_id": deal.id,
        "customer_id": deal.customer_id,
        "owner_id": deal.owner_id,
        "title": deal.title,
        "amount": deal.amount,
        "currency": deal.currency,
        "stage": deal.stage,
        "probability": deal.probability,
        "status": deal.status,
        "opened_at": opened_at,
        "version": deal.version,
    }


async def record_opened(conn: AsyncConnection, tenant_id: str, deal: Deal, at: datetime) -> None:
    await conn.execute(insert(deals).values(_deal_row(tenant_id, deal, at)))
    await _enter(conn, tenant_id, deal, 1, at)


async def record_moved(
    conn: AsyncConnection, tenant_id: str, before: Deal, after: Deal, at: datetime
) -> None:
    await conn.execute(
        update(deals)
        .where(deals.c.tenant_id == tenant_id, deals.c.deal_id == after.id)
        .values(
            stage=after.stage,
            probability=after.probability,
            status=after.status,
            version=after.version,
        )
    )
    if after.stage != before.stage:
        await conn.execute(
            update(stays)
            .where(
                stays.c.tenant_id == tenant_id,
                stays.c.deal_id == after.id,
                stays.c.left_at.is_(None),
            )
            .values(left_at=at)
        )
        await _enter(conn, tenant_id, after, before.version + 1, at)


async def _enter(
    conn: AsyncConnection, tenant_id: str, deal: Deal, version: int, at: datetime
) -> None:
    await conn.execute(
        insert(stays).values(
            tenant_id=tenant_id,
            deal_id=deal.id,
            entered_version=version,
            stage=deal.stage,
            owner_id=deal.owner_id,
            amount=deal.amount,
            currency=deal.currency,
            entered_at=at,
            # A closed deal stays where it closed: that is no stay to time.
            left_at=None,
        )
    )


def deal_summary(row: Any) -> dict[str, Any]:
    return {
        "id": row.deal_id,
        "customer_id": row.customer_id,
        "owner_id": row.owner_id,
        "title": row.title,
        "amount": int(row.amount),
        "currency": row.currency,
        "stage": row.stage,
        "probability": int(row.probability),
        "status": row.status,
        "opened_at": row.opened_at.isoformat(),
        "version": int(row.version),
    }


async def list_deals(
    conn: AsyncConnection,
    tenant_id: str,
    *,
    customers: Sequence[str] | None,
    owner_id: str | None,
    stage: str | None,
    status: str | None,
    limit: int,
) -> list[dict[str, Any]]:
    query = select(deals).where(deals.c.tenant_id == tenant_id)
    if customers is not None:
        query = query.where(deals.c.customer_id.in_(customers))
    if owner_id is not None:
        query = query.where(deals.c.owner_id == owner_id)
    if stage is not None:
        query = query.where(deals.c.stage == stage)
    if status is not None:
        query = query.where(deals.c.status == status)
    query = query.order_by(deals.c.opened_at.desc(), deals.c.deal_id.desc()).limit(limit)
    return [deal_summary(r) for r in await conn.execute(query)]


# --- the funnel ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Period:
    start: datetime
    end: datetime  # exclusive
    owner_id: str | None


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


async def funnel(
    conn: AsyncConnection, tenant_id: str, stages: Sequence[DealStage], period: Period
) -> dict[str, Any]:
    query = select(stays).where(
        stays.c.tenant_id == tenant_id,
        stays.c.entered_at >= period.start,
        stays.c.entered_at < period.end,
    )
    if period.owner_id is not None:
        query = query.where(stays.c.owner_id == period.owner_id)
    in_period = (await conn.execute(query)).all()
    deal_ids = sorted({r.deal_id for r in in_period})
    # Where each of those deals went at any time, to tell who went further.
    reached: dict[str, set[str]] = defaultdict(set)
    for start in range(0, len(deal_ids), 1000):
        chunk = deal_ids[start : start + 1000]
        rows = await conn.execute(
            select(stays.c.deal_id, stays.c.stage).where(
                stays.c.tenant_id == tenant_id, stays.c.deal_id.in_(chunk)
            )
        )
        for deal_id, stage in rows:
            reached[deal_id].add(stage)

    order = {s.name: i for i, s in enumerate(stages)}
    closed = {"won": 0, "lost": 0, "open": 0}
    lines = []
    for i, stage in enumerate(stages):
        entries = [r for r in in_period if r.stage == stage.name]
        entered = {r.deal_id for r in entries}
        value: dict[str, int] = defaultdict(int)
        for deal_id in entered:
            row = next(r for r in entries if r.deal_id == deal_id)
            value[row.currency] += int(row.amount)
        further = {name for name, j in order.items() if j > i and stages[j].outcome != "lost"}
        went_on = sum(1 for d in entered if reached[d] & further)
        closed[stage.outcome] += len(entered)
        finished = [
            (r.left_at - r.entered_at).total_seconds() / 86400
            for r in entries
            if r.left_at is not None
        ]
        lines.append(
            {
                "stage": stage.name,
                "probability": stage.probability,
                "outcome": stage.outcome,
                "deals": len(entered),
                "value": dict(sorted(value.items())),
                "conversion_to_next": None
                if stage.outcome != "open"
                else _ratio(went_on, len(entered)),
                "median_days_in_stage": round(statistics.median(finished), 2) if finished else None,
            }
        )
    won, lost = closed["won"], closed["lost"]
    return {
        "from": period.start.isoformat(),
        "to": period.end.isoformat(),
        "owner_id": period.owner_id,
        "stages": lines,
        "win_rate": _ratio(won, won + lost),
        "forecast": await _forecast(conn, tenant_id, period.owner_id),
    }


async def _forecast(
    conn: AsyncConnection, tenant_id: str, owner_id: str | None
) -> list[dict[str, Any]]:
    """Open deals now: their amount, and weighted by their stage's probability."""
    query = select(deals.c.currency, deals.c.amount, deals.c.probability).where(
        deals.c.tenant_id == tenant_id, deals.c.status == "open"
    )
    if owner_id is not None:
        query = query.where(deals.c.owner_id == owner_id)
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for currency, amount, probability in await conn.execute(query):
        line = totals[currency]
        line[0] += 1
        line[1] += int(amount)
        line[2] += int(amount) * int(probability)
    return [
        {
            "currency": currency,
            "open_deals": count,
            "amount": amount,
            # Percent-weighted, rounded half up to the minor unit.
            "weighted": (weighted + 50) // 100,
        }
        for currency, (count, amount, weighted) in sorted(totals.items())
    ]
