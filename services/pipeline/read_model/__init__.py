"""The pipeline's own query tables, written in the same transaction as the events.

One module per concern, each with its tables and the queries that read them:
``order_list`` (orders, external ids, purchase figures), ``known_customers`` (the
projection fed by ``crm.contacts.events``), ``lead_list``, ``task_list`` (tasks and
contracts) and ``funnel`` (deals and their stays in stages). All share ``metadata``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    MetaData,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

metadata = MetaData()


def upsert_for(conn: AsyncConnection) -> Any:
    return pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
