"""Reading the analytics tables as of a time: only rows dated by then count, an order
cancelled by then is left out, and refunds known by then are taken off their order.

The heavy lifting (netting refunds, grouping by customer or period) is done in SQL;
what comes back is one row per customer, or per customer and period.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Select, case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.selectable import Subquery

from services.analytics.domain.churn import Sale, Span
from services.analytics.domain.periods import Grain, at_start
from services.analytics.domain.sales import CustomerSales
from services.analytics.domain.satisfaction import SurveyAnswer
from services.analytics.domain.segments import Profile
from services.analytics.read_model.tables import Tables


def counted_orders(t: Tables, tenant_id: str, as_of: datetime, end: datetime) -> Any:
    """The orders placed by ``min(end, as_of)`` and not cancelled at ``as_of``."""
    o = t.orders
    return (
        o.c.tenant_id == tenant_id,
        o.c.placed_at <= min(end, as_of),
        or_(o.c.cancelled_at.is_(None), o.c.cancelled_at > as_of),
    )


def net_orders(t: Tables, tenant_id: str, as_of: datetime, end: datetime) -> Subquery:
    """The orders counted at ``as_of``, each with its total less the refunds known then."""
    o, r = t.orders, t.refunds
    refunded = (
        select(r.c.order_id, func.sum(r.c.amount).label("amount"))
        .where(r.c.tenant_id == tenant_id, r.c.at <= as_of)
        .group_by(r.c.order_id)
        .subquery()
    )
    return (
        select(
            o.c.customer_id,
            o.c.order_id,
            o.c.placed_at,
            o.c.month,
            o.c.week,
            (o.c.total - func.coalesce(refunded.c.amount, 0)).label("net"),
        )
        .outerjoin(refunded, refunded.c.order_id == o.c.order_id)
        .where(*counted_orders(t, tenant_id, as_of, end))
        .subquery()
    )


async def customer_sales(
    conn: AsyncConnection,
    t: Tables,
    tenant_id: str,
    as_of: datetime,
    start: datetime | None,
    end: datetime,
) -> dict[str, CustomerSales]:
    """Every customer who ordered by the window's end: its window and lifetime figures."""
    n = net_orders(t, tenant_id, as_of, end)
    in_window = n.c.placed_at >= start if start is not None else n.c.placed_at.is_not(None)
    query = select(
        n.c.customer_id,
        func.sum(case((in_window, 1), else_=0)),
        func.sum(case((in_window, n.c.net), else_=0)),
        func.count(),
        func.sum(n.c.net),
        func.min(n.c.placed_at),
        func.max(n.c.placed_at),
    ).group_by(n.c.customer_id)
    found = {}
    for row in await conn.execute(query):
        customer_id, orders, net, lifetime_orders, lifetime_net, first, last = row
        found[customer_id] = CustomerSales(
            customer_id,
            int(orders),
            int(net),
            int(lifetime_orders),
            int(lifetime_net),
            _utc(first),
            _utc(last),
        )
    return found


async def bought_periods(
    conn: AsyncConnection, t: Tables, tenant_id: str, as_of: datetime, end: datetime, grain: Grain
) -> list[tuple[str, date]]:
    """Each (customer, period) in which the customer placed an order counted at ``as_of``."""
    o = t.orders
    period = o.c.month if grain == "month" else o.c.week
    rows = await conn.execute(
        select(o.c.customer_id, period)
        .where(*counted_orders(t, tenant_id, as_of, end))
        .group_by(o.c.customer_id, period)
    )
    return [(customer_id, _day(p)) for customer_id, p in rows]


async def cohort_cells(
    conn: AsyncConnection, t: Tables, tenant_id: str, as_of: datetime, end: datetime, grain: Grain
) -> dict[tuple[date, date], int]:
    """Per (cohort, period): the customers of the cohort (the period of their first
    order) who ordered in the period; counted in SQL, for a tenant's every customer."""
    o = t.orders
    period = o.c.month if grain == "month" else o.c.week
    bought = (
        select(o.c.customer_id, period.label("period"))
        .where(*counted_orders(t, tenant_id, as_of, end))
        .group_by(o.c.customer_id, period)
        .cte("bought")
    )
    first = (
        select(bought.c.customer_id, func.min(bought.c.period).label("cohort"))
        .group_by(bought.c.customer_id)
        .subquery()
    )
    rows = await conn.execute(
        select(first.c.cohort, bought.c.period, func.count())
        .join_from(bought, first, bought.c.customer_id == first.c.customer_id)
        .group_by(first.c.cohort, bought.c.period)
    )
    return {(_day(cohort), _day(p)): int(count) for cohort, p, count in rows}


async def order_sales(
    conn: AsyncConnection,
    t: Tables,
    tenant_id: str,
    as_of: datetime,
    since: datetime,
    end: datetime,
) -> dict[str, list[Sale]]:
    """Each customer's orders placed from ``since`` to the window's end."""
    n = net_orders(t, tenant_id, as_of, end)
    rows = await conn.execute(
        select(n.c.customer_id, n.c.placed_at, n.c.net).where(n.c.placed_at >= since)
    )
    found: dict[str, list[Sale]] = defaultdict(list)
    for customer_id, placed_at, net in rows:
        found[customer_id].append(Sale(_utc(placed_at), int(net)))  # type: ignore[arg-type]
    return found


async def contract_spans(
    conn: AsyncConnection, t: Tables, tenant_id: str, as_of: datetime
) -> dict[str, list[Span]]:
    """Each contract customer's contracts as known at ``as_of``: from the start signed to
    the end the latest renewal or termination set (the end of that day, UTC)."""
    k = t.contracts
    rows = await conn.execute(
        select(k.c.customer_id, k.c.contract_id, k.c.starts_on, k.c.ends_on)
        .where(k.c.tenant_id == tenant_id, k.c.at <= as_of)
        .order_by(k.c.at, k.c.event_id)
    )
    found: dict[str, dict[str, list[date | None]]] = defaultdict(dict)
    for customer_id, contract_id, starts_on, ends_on in rows:
        known = found[customer_id].setdefault(contract_id, [None, None])
        if starts_on is not None:
            known[0] = _day(starts_on)
        known[1] = _day(ends_on)
    return {
        customer_id: [
            Span(at_start(start), at_start(end + timedelta(days=1)))
            for start, end in contracts.values()
            if start is not None and end is not None
        ]
        for customer_id, contracts in found.items()
    }


def _latest_values(t: Tables, tenant_id: str, as_of: datetime) -> Select[Any]:
    p = t.profile
    ranked = (
        select(
            p.c.customer_id,
            p.c.attribute,
            p.c.value,
            func.row_number()
            .over(
                partition_by=(p.c.customer_id, p.c.attribute),
                order_by=(p.c.at.desc(), p.c.event_id.desc()),
            )
            .label("n"),
        )
        .where(p.c.tenant_id == tenant_id, p.c.at <= as_of)
        .subquery()
    )
    return select(ranked.c.customer_id, ranked.c.attribute, ranked.c.value).where(ranked.c.n == 1)


async def profiles(
    conn: AsyncConnection, t: Tables, tenant_id: str, as_of: datetime, *, attributes: bool = True
) -> dict[str, Profile]:
    """The tenant's customers as of then (registered by then, or known only from other
    services' events; not merged away), each as described then."""
    c = t.customers
    rows = await conn.execute(
        select(c.c.customer_id, c.c.registered_at).where(
            c.c.tenant_id == tenant_id,
            c.c.merged_into.is_(None),
            or_(c.c.registered_at.is_(None), c.c.registered_at <= as_of),
        )
    )
    fields: dict[str, dict[str, Any]] = {
        customer_id: {"registered_at": _utc(registered_at), "tags": set(), "attributes": {}}
        for customer_id, registered_at in rows
    }
    names = {
        "kind": "kind",
        "owner": "owner_id",
        "tier": "loyalty_tier",
        "churn": "churn_level",
        "nps": "nps_group",
    }
    latest = await conn.execute(_latest_values(t, tenant_id, as_of)) if attributes else []
    for customer_id, attribute, value in latest:
        known = fields.get(customer_id)
        if known is None or value is None:
            continue
        if attribute.startswith("tag:"):
            known["tags"].add(attribute[4:])
        elif attribute.startswith("attr:"):
            known["attributes"][attribute[5:]] = json.loads(value)
        elif attribute in names:
            known[names[attribute]] = value
    return {
        customer_id: Profile(
            customer_id,
            registered_at=f["registered_at"],
            kind=f.get("kind"),
            owner_id=f.get("owner_id"),
            tags=frozenset(f["tags"]),
            loyalty_tier=f.get("loyalty_tier"),
            churn_level=f.get("churn_level", "none"),
            nps_group=f.get("nps_group"),
            attributes=f["attributes"],
        )
        for customer_id, f in fields.items()
    }


async def survey_answers(
    conn: AsyncConnection,
    t: Tables,
    tenant_id: str,
    as_of: datetime,
    start: datetime | None,
    end: datetime,
) -> list[SurveyAnswer]:
    s, k = t.surveys, t.tickets
    query = (
        select(s.c.customer_id, s.c.kind, s.c.score, s.c.at, k.c.category)
        .outerjoin(k, (k.c.tenant_id == s.c.tenant_id) & (k.c.ticket_id == s.c.ticket_id))
        .where(s.c.tenant_id == tenant_id, s.c.at <= min(end, as_of))
    )
    if start is not None:
        query = query.where(s.c.at >= start)
    return [
        SurveyAnswer(customer_id, kind, int(score), _utc(at), category)  # type: ignore[arg-type]
        for customer_id, kind, score, at, category in await conn.execute(query)
    ]


async def interaction_counts(
    conn: AsyncConnection,
    t: Tables,
    tenant_id: str,
    as_of: datetime,
    start: datetime | None,
    end: datetime,
) -> dict[str, int]:
    i = t.interactions
    query = (
        select(i.c.customer_id, func.count())
        .where(i.c.tenant_id == tenant_id, i.c.at <= min(end, as_of))
        .group_by(i.c.customer_id)
    )
    if start is not None:
        query = query.where(i.c.at >= start)
    return {customer_id: int(n) for customer_id, n in await conn.execute(query)}


async def tenants(conn: AsyncConnection, t: Tables) -> list[str]:
    c = t.customers
    return [r[0] for r in await conn.execute(select(c.c.tenant_id).distinct())]


def _utc(value: datetime | None) -> datetime | None:
    return value  # UtcDateTime already answers aware UTC times


def _day(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))
