"""SQLite (the embedded default): every transaction begins IMMEDIATE, so writers queue
for the write lock instead of failing; a read through ``snapshot_reads`` does not wait
behind them (without it, this read waits out the 30 s busy timeout), and sees what was
committed."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import text

from libs.platform.db import create_engine, snapshot_reads


async def test_a_snapshot_read_does_not_wait_for_a_writer_holding_the_lock(
    tmp_path: Path,
) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'views.db'}")
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE views (id TEXT PRIMARY KEY, name TEXT)"))
            await conn.execute(text("INSERT INTO views VALUES ('c-1', '王芳')"))
        writer_holds_the_lock = asyncio.Event()
        release = asyncio.Event()

        async def long_batch() -> None:
            async with engine.begin() as conn:
                await conn.execute(text("UPDATE views SET name = '王芳 (batch)' WHERE id = 'c-1'"))
                writer_holds_the_lock.set()
                await release.wait()

        batch = asyncio.create_task(long_batch())
        await writer_holds_the_lock.wait()
        try:
            async with asyncio.timeout(2), snapshot_reads(engine).connect() as conn:
                name = await conn.scalar(text("SELECT name FROM views WHERE id = 'c-1'"))
        finally:
            release.set()
            await batch

        assert name == "王芳"  # the last committed state, not the batch in flight
    finally:
        await engine.dispose()
