"""The outbox table's bookkeeping: what waits in it, how long, and what leaves it.

The relay (``outbox.py``) reads what is there now, publishes it, and deletes only the
rows the broker acknowledged; the backlog is what the metrics and ops report show.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, any_, bindparam, delete, func, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from libs.events.store import (
    EVENT_COLUMNS,
    EventStore,
    RecordedEvent,
    events,
    outbox,
    recorded_event,
)
from libs.platform.db import is_postgres

_PENDING = """
SELECT e.position, e.event_id, e.tenant_id, e.stream_id, e.version, e.type, e.partition_key,
       e.data::text AS data, e.occurred_at, e.recorded_at, e.correlation_id, e.causation_id,
       e.traceparent, e.tracestate
FROM outbox o JOIN events e ON e.position = o.position
ORDER BY o.position
LIMIT $1
"""

_PLAN_EACH_POLL = text("SET LOCAL plan_cache_mode = force_custom_plan")


@dataclass(frozen=True, slots=True)
class OutboxBacklog:
    """Events stored but not yet published, and how long the oldest has waited."""

    events: int
    oldest_enqueued_at: datetime | None
    oldest_age_seconds: float


async def outbox_backlog(conn: AsyncConnection, *, now: datetime | None = None) -> OutboxBacklog:
    """The backlog behind ``crm_outbox_backlog_events`` and the ops endpoints: one count."""
    row = (await conn.execute(select(func.count(), func.min(outbox.c.enqueued_at)))).one()
    count, oldest = int(row[0]), row[1]
    age = 0.0
    if oldest is not None:
        if oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=UTC)
        age = max(0.0, ((now or datetime.now(UTC)) - oldest).total_seconds())
    return OutboxBacklog(count, oldest, age)


async def pending_events(
    conn: AsyncConnection, store: EventStore, limit: int
) -> list[tuple[RecordedEvent, bytes | None]]:
    """The outbox now, in position order, personal data opened; beside each event its
    data as stored where it can go out as it is (None: the record encodes it)."""
    if not is_postgres(store.engine):
        query = (
            select(*EVENT_COLUMNS)
            .select_from(outbox.join(events, outbox.c.position == events.c.position))
            .order_by(outbox.c.position)
            .limit(limit)
        )
        pending = [recorded_event(r) for r in await conn.execute(query)]
        opened = await store.open_personal_data(conn, pending)
        return [(e, None) for e in opened]
    # Planned for the tables as they are now, on every poll: a plan PostgreSQL cached
    # while the store was small walks every event ever stored looking for the few
    # in the outbox (20 ms per poll at 20,000 events, growing), where statistics are
    # stale (autovacuum late or off). Planning costs a fraction of a millisecond.
    await conn.execute(_PLAN_EACH_POLL)  # for this transaction (the connection's own)
    # PostgreSQL: the stored JSON goes out as it is, without a decode and re-encode,
    # except for events with sealed personal fields, which must be opened first.
    driver: Any = (await conn.get_raw_connection()).driver_connection
    rows = await driver.fetch(_PENDING, limit)
    plain: dict[int, bytes] = {}
    recorded = []
    for r in rows:
        personal = store.vault is not None and store.vault.is_personal(r["type"])
        data = json.loads(r["data"]) if personal else {}
        if not personal:
            plain[r["position"]] = r["data"].encode()
        recorded.append(
            RecordedEvent(
                r["position"],
                r["event_id"],
                r["tenant_id"],
                r["stream_id"],
                r["version"],
                r["type"],
                r["partition_key"],
                data,
                r["occurred_at"],
                r["recorded_at"],
                r["correlation_id"],
                r["causation_id"],
                r["traceparent"],
                r["tracestate"],
            )
        )
    if len(plain) < len(recorded):
        recorded = await store.open_personal_data(conn, recorded)
    return [(e, plain.get(e.position)) for e in recorded]


async def remove_published(
    conn: AsyncConnection, engine: AsyncEngine, positions: list[int]
) -> None:
    """Delete the rows of the events the broker acknowledged, and only those."""
    if is_postgres(engine):
        await conn.execute(
            delete(outbox).where(
                outbox.c.position == any_(bindparam("p", positions, type_=ARRAY(BigInteger)))
            )
        )
    else:
        await conn.execute(delete(outbox).where(outbox.c.position.in_(positions)))
