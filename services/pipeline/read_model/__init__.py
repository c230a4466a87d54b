"""The pipeline's own query tables, written in the same transaction as the events.

One module per concern, each with its tables and the queries that read them:
``order_list`` (orders, external ids, purchase figures), ``known_customers`` (the
projection fed by ``crm.contacts.events``), ``lead_list``, ``task_list`` (tasks and
contracts) and ``funnel`` (deals and their stays in stages). All share ``metadata``.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Any

from sqlalchemy import (
    MetaData,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from libs.platform.errors import Unprocessable

metadata = MetaData()


def upsert_for(conn: AsyncConnection) -> Any:
    return pg_insert if conn.dialect.name == "postgresql" else sqlite_insert


# --- paging ----------------------------------------------------------------------------


def encode_cursor(at: datetime, item_id: str) -> str:
    raw = json.dumps([at.isoformat(), item_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The position after which the next page starts; 422 for anything not ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, item_id = json.loads(raw)
        position = datetime.fromisoformat(at)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise Unprocessable("cursor", "is not a cursor this service returned") from None
    if position.tzinfo is None or not isinstance(item_id, str):
        raise Unprocessable("cursor", "is not a cursor this service returned")
    return position, item_id
