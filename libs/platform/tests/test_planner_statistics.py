"""The statistics keeper: autovacuum's analyze rule, applied by the service itself."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from libs.events.tests.conftest import eventually
from libs.platform.planner_statistics import refresh_stale_statistics


async def _insert_visits(engine: AsyncEngine, rows: int, first: int = 1) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO visits SELECT n"
                " FROM generate_series(CAST(:first AS bigint), CAST(:last AS bigint)) AS n"
            ),
            {"first": first, "last": first + rows - 1},
        )
        # This connection's counts reach the statistics views as it goes idle.
        await conn.execute(text("SELECT pg_stat_force_next_flush()"))


async def _changed_since_analyze(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        changed = await conn.scalar(
            text("SELECT n_mod_since_analyze FROM pg_stat_user_tables WHERE relname = 'visits'")
        )
    return int(changed or 0)


async def _analysed(engine: AsyncEngine) -> bool:
    async with engine.connect() as conn:
        return bool(
            await conn.scalar(
                text(
                    "SELECT last_analyze IS NOT NULL FROM pg_stat_user_tables"
                    " WHERE relname = 'visits'"
                )
            )
        )


async def test_a_table_that_changed_enough_is_analysed_once(pg_engine: AsyncEngine) -> None:
    async with pg_engine.begin() as conn:
        await conn.execute(text("CREATE TABLE visits (id bigint PRIMARY KEY)"))
    await _insert_visits(pg_engine, 1000)

    async def counted() -> bool:
        return await _changed_since_analyze(pg_engine) >= 1000

    await eventually(counted)

    assert await refresh_stale_statistics(pg_engine) == ["visits"]
    assert await _analysed(pg_engine)
    assert await refresh_stale_statistics(pg_engine) == []


async def test_a_few_rows_more_are_not_worth_an_analyze(pg_engine: AsyncEngine) -> None:
    async with pg_engine.begin() as conn:
        await conn.execute(text("CREATE TABLE visits (id bigint PRIMARY KEY)"))
    await _insert_visits(pg_engine, 1000)
    async with pg_engine.begin() as conn:
        await conn.execute(text("ANALYZE visits"))
    await _insert_visits(pg_engine, 100, first=1001)  # under 50 rows + 10 % of 1,000

    async def counted() -> bool:
        return await _changed_since_analyze(pg_engine) >= 100

    await eventually(counted)

    assert await refresh_stale_statistics(pg_engine) == []


async def test_sqlite_has_nothing_to_analyse(sqlite_engine: AsyncEngine) -> None:
    assert await refresh_stale_statistics(sqlite_engine) == []
