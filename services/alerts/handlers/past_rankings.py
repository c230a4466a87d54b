"""Rankings as of a past time, as jobs (decision 0093): asked for with ``POST
/api/v1/churn/rankings``, scored by one worker per database on a read connection (no
write lock held while it scores), kept row by row and read a page at a time. With a
horizon, the job is a backtest too: its report is kept with it.

A job is a row of ``churn_rankings`` (queued -> running -> done or failed); its
ranked customers are rows of ``churn_ranking_rows`` by position. The same
``Idempotency-Key`` returns the same job. A job found running at start (its worker
stopped) is queued again: scoring is a pure read, so doing it twice is harmless.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    delete,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from libs.platform.db import JsonDocument, UtcDateTime
from libs.platform.db import upsert_into as insert
from services.alerts.handlers import churn_metrics, ranking

log = logging.getLogger(__name__)

metadata = MetaData()

JobStatus = Literal["queued", "running", "done", "failed"]

rankings = Table(
    "churn_rankings",
    metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("ranking_id", String(36), primary_key=True),
    Column("idempotency_key", String(64), nullable=True),
    Column("as_of", UtcDateTime, nullable=False),
    Column("owner_id", String(64), nullable=True),
    # A backtest too: the ranking judged against who bought nothing within this many
    # days after ``as_of`` (the horizon must have passed when asked).
    Column("horizon_days", Integer, nullable=True),
    Column("report", JsonDocument, nullable=True),
    Column("status", String(8), nullable=False),
    Column("ranked", Integer, nullable=True),
    Column("error", String(500), nullable=True),
    Column("requested_by", String(128), nullable=False),
    Column("requested_at", UtcDateTime, nullable=False),
    Column("finished_at", UtcDateTime, nullable=True),
    Index("ix_churn_rankings_key", "tenant_id", "idempotency_key", unique=True),
    Index("ix_churn_rankings_status", "status"),
)

ranking_rows = Table(
    "churn_ranking_rows",
    metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("ranking_id", String(36), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("customer_id", String(64), nullable=False),
    Column("owner_id", String(64), nullable=True),
    Column("score", Integer, nullable=False),
    Column("level", String(8), nullable=False),
    Column("reasons", JsonDocument, nullable=False),
    Column("no_purchase_probability", Float, nullable=True),
    Column("predicted_value", BigInteger, nullable=True),
    Column("revenue_at_risk", BigInteger, nullable=True),
)

# Rows written per statement when a ranking is kept.
CHUNK = 1000


@dataclass(frozen=True, slots=True)
class PastRanking:
    ranking_id: str
    as_of: datetime
    owner_id: str | None
    horizon_days: int | None
    report: dict[str, Any] | None
    status: JobStatus
    ranked: int | None
    error: str | None
    requested_at: datetime
    finished_at: datetime | None


def _job(row: Any) -> PastRanking:
    return PastRanking(
        row.ranking_id,
        row.as_of,
        row.owner_id,
        row.horizon_days,
        row.report,
        row.status,
        row.ranked,
        row.error,
        row.requested_at,
        row.finished_at,
    )


async def request(
    engine: AsyncEngine,
    tenant_id: str,
    as_of: datetime,
    owner_id: str | None,
    by: str,
    now: datetime,
    idempotency_key: str | None,
    horizon_days: int | None = None,
) -> tuple[PastRanking, bool]:
    """The job for this request and whether it is new: a known key returns its job."""
    async with engine.begin() as conn:
        if idempotency_key is not None:
            found = await _by_key(conn, tenant_id, idempotency_key)
            if found is not None:
                return found, False
        ranking_id = str(uuid.uuid4())
        await conn.execute(
            insert(conn, rankings)
            .values(
                tenant_id=tenant_id,
                ranking_id=ranking_id,
                idempotency_key=idempotency_key,
                as_of=as_of,
                owner_id=owner_id,
                horizon_days=horizon_days,
                status="queued",
                requested_by=by,
                requested_at=now,
            )
            .on_conflict_do_nothing()
        )
        # A racing request with the same key got there first: its job is the one.
        if idempotency_key is not None:
            found = await _by_key(conn, tenant_id, idempotency_key)
            assert found is not None
            return found, found.ranking_id == ranking_id
        created = await job(conn, tenant_id, ranking_id)
        assert created is not None
        return created, True


async def _by_key(conn: AsyncConnection, tenant_id: str, key: str) -> PastRanking | None:
    return await _find(conn, tenant_id, rankings.c.idempotency_key == key)


async def job(conn: AsyncConnection, tenant_id: str, ranking_id: str) -> PastRanking | None:
    return await _find(conn, tenant_id, rankings.c.ranking_id == ranking_id)


async def _find(conn: AsyncConnection, tenant_id: str, which: Any) -> PastRanking | None:
    query = select(rankings).where(rankings.c.tenant_id == tenant_id, which)
    row = (await conn.execute(query)).one_or_none()
    return _job(row) if row is not None else None


async def rows(
    conn: AsyncConnection, tenant_id: str, ranking_id: str, after: int, limit: int
) -> list[Any]:
    """A page of a done ranking: the rows after position ``after``."""
    return list(
        await conn.execute(
            select(ranking_rows)
            .where(
                ranking_rows.c.tenant_id == tenant_id,
                ranking_rows.c.ranking_id == ranking_id,
                ranking_rows.c.position > after,
            )
            .order_by(ranking_rows.c.position)
            .limit(limit)
        )
    )


async def requeue_running(engine: AsyncEngine) -> None:
    """At start: a job left running by a stopped worker is queued again."""
    async with engine.begin() as conn:
        await conn.execute(
            update(rankings).where(rankings.c.status == "running").values(status="queued")
        )


async def score_next(engine: AsyncEngine, clock: Callable[[], datetime]) -> bool:
    """Score the oldest queued job, if any; whether there was one."""
    async with engine.begin() as conn:
        row = (
            await conn.execute(
                select(rankings)
                .where(rankings.c.status == "queued")
                .order_by(rankings.c.requested_at)
                .limit(1)
            )
        ).one_or_none()
        if row is None:
            return False
        await conn.execute(
            update(rankings)
            .where(rankings.c.tenant_id == row.tenant_id, rankings.c.ranking_id == row.ranking_id)
            .values(status="running")
        )
    started = time.perf_counter()
    try:
        # A read connection: on SQLite a snapshot, and no write lock while it scores.
        report = None
        async with engine.connect() as conn:
            ranked = await ranking.risks_as_of(conn, row.tenant_id, row.as_of, row.owner_id)
            if row.horizon_days is not None:
                report = await ranking.backtest(
                    conn, row.tenant_id, row.as_of, timedelta(days=row.horizon_days), ranked
                )
        async with engine.begin() as conn:
            await conn.execute(
                delete(ranking_rows).where(
                    ranking_rows.c.tenant_id == row.tenant_id,
                    ranking_rows.c.ranking_id == row.ranking_id,
                )
            )
            for start in range(0, len(ranked), CHUNK):
                await conn.execute(
                    ranking_rows.insert(),
                    [
                        {
                            "tenant_id": row.tenant_id,
                            "ranking_id": row.ranking_id,
                            "position": start + n + 1,
                            "customer_id": r.risk.customer_id,
                            "owner_id": r.owner_id,
                            "score": r.risk.score,
                            "level": r.risk.level,
                            "reasons": [x.model_dump(mode="json") for x in r.risk.reasons],
                            **asdict(r.risk.worth),
                        }
                        for n, r in enumerate(ranked[start : start + CHUNK])
                    ],
                )
            await _finish(conn, row, "done", clock(), ranked=len(ranked), report=report)
        churn_metrics.PAST_RANKINGS.labels("done").inc()
    except Exception as failed:
        log.exception("churn ranking %s failed", row.ranking_id)
        async with engine.begin() as conn:
            await _finish(conn, row, "failed", clock(), error=str(failed)[:500])
        churn_metrics.PAST_RANKINGS.labels("failed").inc()
    churn_metrics.PAST_RANKING_SECONDS.observe(time.perf_counter() - started)
    return True


async def _finish(
    conn: AsyncConnection,
    row: Any,
    status: JobStatus,
    now: datetime,
    *,
    ranked: int | None = None,
    error: str | None = None,
    report: dict[str, Any] | None = None,
) -> None:
    await conn.execute(
        update(rankings)
        .where(rankings.c.tenant_id == row.tenant_id, rankings.c.ranking_id == row.ranking_id)
        .values(status=status, ranked=ranked, error=error, finished_at=now, report=report)
    )


async def score_queued(engine: AsyncEngine, clock: Callable[[], datetime]) -> int:
    """Score every queued job, oldest first; how many."""
    done = 0
    while await score_next(engine, clock):
        done += 1
    return done
