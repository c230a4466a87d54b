"""The runtime's tables made by an earlier version take the columns added since."""

from __future__ import annotations

from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine

from libs.events.checkpoints import create_runtime_tables


async def test_a_checkpoints_table_made_before_gets_the_last_event_id(
    any_engine: AsyncEngine,
) -> None:
    async with any_engine.begin() as conn:
        await conn.execute(
            text(
                "CREATE TABLE projection_checkpoints (projection VARCHAR(120), topic VARCHAR(200),"
                " partition INTEGER, next_offset BIGINT NOT NULL, last_event_time TIMESTAMP,"
                " updated_at TIMESTAMP NOT NULL, PRIMARY KEY (projection, topic, partition))"
            )
        )
        await conn.execute(
            text(
                "INSERT INTO projection_checkpoints VALUES"
                " ('visit_totals.g1', 't', 0, 12, NULL, CURRENT_TIMESTAMP)"
            )
        )

    for _ in range(2):  # a second start finds the column there
        async with any_engine.begin() as conn:
            await conn.run_sync(create_runtime_tables)

    async with any_engine.connect() as conn:
        columns = await conn.run_sync(
            lambda sync: {c["name"] for c in inspect(sync).get_columns("projection_checkpoints")}
        )
        kept = await conn.scalar(text("SELECT next_offset FROM projection_checkpoints"))
    assert "last_event_id" in columns
    assert kept == 12
