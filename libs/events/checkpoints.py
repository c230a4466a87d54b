"""The projection runtime's own tables: checkpoints, applied event ids, generations.

A checkpoint is the next offset to read in a partition and the id of the message
just before it; the id lets a resumed consumer tell the topic it read from a
topic that was lost and refilled since (docs/decisions/0010).
"""

from __future__ import annotations

from sqlalchemy import Column, Integer, MetaData, String, Table, inspect, text
from sqlalchemy.engine import Connection

from libs.platform.db import BigId, UtcDateTime

runtime_metadata = MetaData()

checkpoints = Table(
    "projection_checkpoints",
    runtime_metadata,
    Column("projection", String(120), primary_key=True),
    Column("topic", String(200), primary_key=True),
    Column("partition", Integer, primary_key=True),
    Column("next_offset", BigId, nullable=False),
    Column("last_event_time", UtcDateTime),
    Column("updated_at", UtcDateTime, nullable=False),
    # The CloudEvents id of the message at next_offset - 1 (None: no id, or saved before).
    Column("last_event_id", String(64)),
)

applied_events = Table(
    "projection_applied_events",
    runtime_metadata,
    Column("projection", String(120), primary_key=True),
    Column("event_id", String(64), primary_key=True),
)

generations = Table(
    "projection_generations",
    runtime_metadata,
    Column("projection", String(80), primary_key=True),
    Column("active", Integer, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)


def create_runtime_tables(conn: Connection) -> None:
    """Create the tables, and add columns that came later to tables made before."""
    runtime_metadata.create_all(conn)
    present = {c["name"] for c in inspect(conn).get_columns(checkpoints.name)}
    if "last_event_id" not in present:
        # IF NOT EXISTS: another process may add it first (SQLite writers queue instead).
        guard = "IF NOT EXISTS " if conn.dialect.name == "postgresql" else ""
        conn.execute(
            text(f"ALTER TABLE {checkpoints.name} ADD COLUMN {guard}last_event_id VARCHAR(64)")
        )
