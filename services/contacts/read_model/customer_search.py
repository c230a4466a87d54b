"""``GET /customers``: the tenant's live customers searched and filtered, newest
registration first, a page at a time (a cursor on the listing index's order)."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    and_,
    or_,
    select,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from libs.platform.dependencies import decode_cursor, encode_cursor
from services.contacts.read_model.customer_list import customer_tags, customers

MAX_PAGE = 200


@dataclass(frozen=True, slots=True)
class CustomerQuery:
    """What ``GET /customers`` may filter on; None means "any"."""

    q: str | None = None
    tags: tuple[str, ...] = ()
    owner_id: str | None = None
    kind: str | None = None
    registered_from: datetime | None = None
    registered_before: datetime | None = None


@dataclass(frozen=True, slots=True)
class Page:
    items: list[dict[str, Any]]
    next_cursor: str | None


def normalise_query(raw: str) -> str:
    """The search box's text in the form ``search_text`` keeps."""
    text_ = " ".join(unicodedata.normalize("NFKC", raw).lower().split())
    # "138-0013-8000" or "(07911) 123 456": a phone number, matched by its digits; a
    # leading 0 is the trunk prefix dialled at home, never part of the E.164 number.
    if re.fullmatch(r"[0-9\s()+.\-]+", text_) and sum(c.isdigit() for c in text_) >= 3:
        return "".join(c for c in text_ if c.isdigit()).lstrip("0")
    return text_


def _like_pattern(term: str) -> str:
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def search(
    conn: AsyncConnection,
    tenant_id: str,
    query: CustomerQuery,
    *,
    cursor: str | None,
    limit: int,
) -> Page:
    """Live customers of the tenant, newest registration first, ``limit`` at a time."""
    conditions = [
        customers.c.tenant_id == tenant_id,
        customers.c.survivor_id.is_(None),
        customers.c.erased.is_(False),
    ]
    if query.q is not None and (term := normalise_query(query.q)):
        conditions.append(customers.c.search_text.like(_like_pattern(term), escape="\\"))
    for tag in query.tags:
        # Correlated EXISTS: one primary-key probe per candidate row, walked in the
        # listing index's order, so a page stops as soon as it is full.
        conditions.append(
            select(customer_tags.c.customer_id)
            .where(
                customer_tags.c.tenant_id == customers.c.tenant_id,
                customer_tags.c.tag == tag,
                customer_tags.c.customer_id == customers.c.customer_id,
            )
            .exists()
        )
    if query.owner_id is not None:
        conditions.append(customers.c.owner_id == query.owner_id)
    if query.kind is not None:
        conditions.append(customers.c.kind == query.kind)
    if query.registered_from is not None:
        conditions.append(customers.c.registered_at >= query.registered_from)
    if query.registered_before is not None:
        conditions.append(customers.c.registered_at < query.registered_before)
    if cursor is not None:
        at, after_id = decode_cursor(cursor, datetime, str)
        conditions.append(
            or_(
                customers.c.registered_at < at,
                and_(customers.c.registered_at == at, customers.c.customer_id < after_id),
            )
        )
    limit = max(1, min(limit, MAX_PAGE))
    rows = (
        await conn.execute(
            select(customers.c.profile, customers.c.registered_at, customers.c.customer_id)
            .where(*conditions)
            .order_by(customers.c.registered_at.desc(), customers.c.customer_id.desc())
            .limit(limit + 1)
        )
    ).all()
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1][1], rows[-1][2])
    return Page(items=[dict(r[0]) for r in rows], next_cursor=next_cursor)
