"""Service statistics over a period: volumes, medians in business time, SLA, CSAT, NPS.

Computed from this service's own tables (the ticket rows keep each ticket's business
times, measured in its own calendar when it changed), so a period of a few thousand
tickets is one indexed read per figure.
"""

from __future__ import annotations

from datetime import datetime
from statistics import median
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.tickets.handlers.surveys import answers
from services.tickets.read_model.ticket_list import tickets


async def service_stats(
    engine: AsyncEngine, tenant_id: str, start: datetime, end: datetime
) -> dict[str, Any]:
    t = tickets
    async with engine.connect() as conn:
        opened = await conn.scalar(
            select(func.count()).where(
                t.c.tenant_id == tenant_id, t.c.opened_at >= start, t.c.opened_at < end
            )
        )
        first_responses = [
            r[0]
            for r in await conn.execute(
                select(t.c.first_response_seconds).where(
                    t.c.tenant_id == tenant_id,
                    t.c.first_response_at >= start,
                    t.c.first_response_at < end,
                    t.c.first_response_seconds.is_not(None),
                )
            )
        ]
        solved_rows = (
            await conn.execute(
                select(t.c.priority, t.c.resolution_seconds, t.c.breached, t.c.calendar).where(
                    t.c.tenant_id == tenant_id, t.c.solved_at >= start, t.c.solved_at < end
                )
            )
        ).all()
        complaints_open = await conn.scalar(
            select(func.count()).where(
                t.c.tenant_id == tenant_id,
                t.c.category == "complaint",
                t.c.status.in_(("open", "pending", "solved")),
            )
        )
        scores = (
            await conn.execute(
                select(answers.c.kind, answers.c.score).where(
                    answers.c.tenant_id == tenant_id,
                    answers.c.answered_at >= start,
                    answers.c.answered_at < end,
                )
            )
        ).all()
    compliance: dict[str, dict[str, Any]] = {}
    for priority, _, breached, calendar in solved_rows:
        if calendar is None:  # no SLA measured it
            continue
        entry = compliance.setdefault(priority, {"solved": 0, "met": 0})
        entry["solved"] += 1
        entry["met"] += 0 if breached else 1
    for entry in compliance.values():
        entry["percent_met"] = round(100 * entry["met"] / entry["solved"], 1)
    csat = [score for kind, score in scores if kind == "csat"]
    nps = [score for kind, score in scores if kind == "nps"]
    return {
        "from": start,
        "to": end,
        "tickets_opened": opened,
        "tickets_solved": len(solved_rows),
        "median_first_response_business_hours": _hours(first_responses),
        "median_resolution_business_hours": _hours([r[1] for r in solved_rows if r[1] is not None]),
        "sla_compliance": compliance,
        "csat": {
            "answers": len(csat),
            "percent_satisfied": _percent(sum(1 for s in csat if s >= 4), len(csat)),
        },
        "nps": {
            "answers": len(nps),
            # Promoters minus detractors, in percent of answers: -100 to 100.
            "score": None
            if not nps
            else round(100 * (sum(s >= 9 for s in nps) - sum(s <= 6 for s in nps)) / len(nps)),
        },
        "complaints_open": complaints_open,
    }


def _hours(seconds: list[int]) -> float | None:
    return round(median(seconds) / 3600, 2) if seconds else None


def _percent(part: int, whole: int) -> float | None:
    return round(100 * part / whole, 1) if whole else None
