"""PostgreSQL's planner kept right around bulk imports: custom plans for the batches'
long IN lists, and fresh table statistics once an import is done. Nothing here
changes a result, only how long it takes."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from libs.platform.db import is_postgres
from services.contacts.read_model.customer_list import metadata


async def plan_each_bulk_query(conn: AsyncConnection) -> None:
    """For this transaction, plan every statement for its own parameters (PostgreSQL).

    A bulk batch repeats the same 1,000-value IN lookups; after five runs PostgreSQL
    may switch to a generic plan that compares each row with every value, which
    made a 100,000-row import quadratic. Custom plans hash the list instead.
    """
    if is_postgres(conn.engine):
        await conn.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))


async def refresh_statistics(engine: AsyncEngine) -> None:
    """After a bulk import, let PostgreSQL plan with the tables' new sizes.

    Autovacuum would get there within a minute or so; until then the planner
    believes the tables are as small as before the import and picks plans (nested
    scans) that take seconds instead of milliseconds on the first searches.
    """
    if is_postgres(engine):
        # The event store's tables too: the relay's lookups by position and subject
        # suffer from the same stale sizes while it publishes the import.
        names = [t.name for t in metadata.sorted_tables]
        names += ["events", "outbox", "personal_data_keys"]
        async with engine.connect() as conn:
            await conn.execute(text(f"ANALYZE {', '.join(names)}"))
            await conn.commit()
