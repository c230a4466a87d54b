"""Fresh planner statistics for a service's tables, whatever the server's autovacuum does.

PostgreSQL plans from statistics that autovacuum's ANALYZE keeps current. Where it is
off or behind (seen on a CI server with ``autovacuum = off``), the statistics stay
those of the empty tables, and the plans cached from them walk a whole table for one
row: the registration routine's check of the custom field version read every event
of the tenant (3.7 ms a registration at 5,000 events, and growing). A cached plan is
made again once its tables are analysed.

The keeper applies autovacuum's own rule for ANALYZE (50 rows plus 10 % of the table
changed since the last one) to the service's database every few seconds. Where
autovacuum keeps up, it finds nothing to do.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from libs.platform.db import is_postgres

log = logging.getLogger(__name__)

# autovacuum_analyze_threshold and autovacuum_analyze_scale_factor's defaults.
ANALYZE_THRESHOLD_ROWS = 50
ANALYZE_SCALE_FACTOR = 0.1
CHECK_EVERY_SECONDS = 5.0

_STALE = text(
    """
    SELECT s.relname FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
    WHERE s.schemaname = current_schema()
      AND s.n_mod_since_analyze >= :rows + :fraction * greatest(c.reltuples, 0)
    ORDER BY s.relname
    """
)


async def refresh_stale_statistics(engine: AsyncEngine) -> list[str]:
    """ANALYZE every table of the database's schema that changed enough; their names."""
    if not is_postgres(engine):
        return []  # SQLite plans without gathered statistics
    async with engine.connect() as conn:
        stale = list(
            await conn.scalars(
                _STALE, {"rows": ANALYZE_THRESHOLD_ROWS, "fraction": ANALYZE_SCALE_FACTOR}
            )
        )
        quote = conn.dialect.identifier_preparer.quote
        for table in stale:
            await conn.execute(text(f"ANALYZE {quote(table)}"))
        await conn.commit()
    return stale


async def keep_statistics_fresh(
    engine: AsyncEngine, stop: asyncio.Event, *, every: float = CHECK_EVERY_SECONDS
) -> None:
    """Until ``stop``: refresh stale statistics every ``every`` seconds."""
    while not stop.is_set():
        try:
            refreshed = await refresh_stale_statistics(engine)
        except (SQLAlchemyError, OSError) as exc:
            # The database being away is the request paths' problem to report.
            log.warning("statistics: could not refresh (%s)", exc)
        else:
            if refreshed:
                log.info("statistics: analysed %s", ", ".join(refreshed))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every)
