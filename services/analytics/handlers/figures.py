"""Computing each figure for a window, as of a time, over a segment (or everyone)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from libs.buyer_models import buyer_of
from libs.platform.errors import Unprocessable
from services.analytics.domain import cohorts, prediction, sales, satisfaction
from services.analytics.domain.churn import YEAR, monthly_churn
from services.analytics.domain.figure import Answer
from services.analytics.domain.periods import Grain, period_of, periods, periods_between
from services.analytics.handlers import Analytics, Window
from services.analytics.handlers.segments import customers_as_of, population
from services.analytics.read_model import queries, segment_list


async def sales_figure(
    conn: AsyncConnection,
    analytics: Analytics,
    tenant_id: str,
    window: Window,
    fold: Callable[[list[sales.CustomerSales]], Answer],
) -> Answer:
    t = await analytics.tables(conn)
    found = await queries.customer_sales(conn, t, tenant_id, window.as_of, window.start, window.end)
    members = await population(conn, analytics, tenant_id, window)
    return fold([s for c, s in found.items() if members is None or c in members])


async def retention(
    conn: AsyncConnection,
    analytics: Analytics,
    tenant_id: str,
    window: Window,
    grain: Grain,
    with_customers: bool,
) -> Answer:
    """The cohort table; counted in SQL over every customer, or from each customer's
    periods when a segment narrows it or the customers behind it are asked for."""
    t = await analytics.tables(conn)
    members = await population(conn, analytics, tenant_id, window)
    first = period_of(window.start, grain) if window.start is not None else None
    bought: list[tuple[str, date]] = []
    if members is None and not with_customers:
        cells = await queries.cohort_cells(conn, t, tenant_id, window.as_of, window.end, grain)
    else:
        bought = await queries.bought_periods(conn, t, tenant_id, window.as_of, window.end, grain)
        cells = cohorts.cells_of(bought, members)
    kept = {key: n for key, n in cells.items() if first is None or key[0] >= first}
    answer = cohorts.retention(kept, grain, period_of(window.until, grain))
    cohort_of = cohorts.cohort_of(bought)
    periods_of: dict[str, list[int]] = {}
    for customer_id, period in sorted(bought):
        cohort = cohort_of[customer_id]
        if (members is None or customer_id in members) and (first is None or cohort >= first):
            k = periods_between(cohort, period, grain)
            periods_of.setdefault(customer_id, []).append(k)
    customers = [
        {"customer_id": c, "cohort_start": cohort_of[c].isoformat(), "periods": sorted(ks)}
        for c, ks in sorted(periods_of.items())
    ]
    return Answer(answer.figure, answer.summary, answer.method, answer.table, customers)


async def churn_rate(
    conn: AsyncConnection, analytics: Analytics, tenant_id: str, window: Window
) -> Answer:
    if window.start is None:
        raise Unprocessable("from", "the churn rate needs the first month of the window")
    t = await analytics.tables(conn)
    settings, _ = await segment_list.settings_of(conn, tenant_id)
    lost_after = timedelta(days=settings.lost_after_days)
    # The orders that can decide who was active or lost in the window, and a year of
    # revenue before the oldest of them.
    since = window.start - lost_after - YEAR
    histories = await queries.order_sales(conn, t, tenant_id, window.as_of, since, window.end)
    contracts = await queries.contract_spans(conn, t, tenant_id, window.as_of)
    members = await population(conn, analytics, tenant_id, window)
    if members is not None:
        histories = {c: h for c, h in histories.items() if c in members}
        contracts = {c: h for c, h in contracts.items() if c in members}
    months = periods(window.start.date(), window.until.date(), "month")
    return monthly_churn(histories, months, lost_after, window.until, contracts)


async def surveys(
    conn: AsyncConnection,
    analytics: Analytics,
    tenant_id: str,
    window: Window,
    kind: str,
    by: satisfaction.Breakdown,
    grain: Grain,
) -> Answer:
    t = await analytics.tables(conn)
    answers = await queries.survey_answers(
        conn, t, tenant_id, window.as_of, window.start, window.end
    )
    members = await population(conn, analytics, tenant_id, window)
    if members is not None:
        answers = [a for a in answers if a.customer_id in members]
    if by == "owner":
        profiles = await queries.profiles(conn, t, tenant_id, window.as_of)
        answers = [
            satisfaction.SurveyAnswer(
                a.customer_id,
                a.kind,
                a.score,
                a.at,
                a.category,
                profiles[a.customer_id].owner_id if a.customer_id in profiles else None,
            )
            for a in answers
        ]
    fold = satisfaction.nps if kind == "nps" else satisfaction.csat
    return fold(answers, by, grain)


async def activity(
    conn: AsyncConnection, analytics: Analytics, tenant_id: str, window: Window
) -> Answer:
    t = await analytics.tables(conn)
    counts = await queries.interaction_counts(
        conn, t, tenant_id, window.as_of, window.start, window.end
    )
    everyone = await customers_as_of(conn, t, tenant_id, window.as_of)
    members = await population(conn, analytics, tenant_id, window)
    rows = [
        satisfaction.CustomerActivity(c, p.owner_id, counts.get(c, 0))
        for c, p in everyone.profiles.items()
        if members is None or c in members
    ]
    return satisfaction.activity(rows)


async def predicted_clv(
    conn: AsyncConnection, analytics: Analytics, tenant_id: str, window: Window, horizon_days: int
) -> Answer:
    """Fitted on every customer of the tenant; reported over the segment, if any."""
    t = await analytics.tables(conn)
    found = await queries.customer_sales(conn, t, tenant_id, window.as_of, None, window.end)
    until = window.until
    summaries = [
        buyer_of(
            s.customer_id,
            s.first_order_at,
            s.last_order_at,
            s.lifetime_orders,
            s.lifetime_net,
            until,
        )
        for s in found.values()
        if s.first_order_at is not None and s.last_order_at is not None and s.lifetime_orders
    ]
    answer = prediction.clv_answer(summaries, horizon_days / 7)
    members = await population(conn, analytics, tenant_id, window)
    if members is None or not answer.customers:
        return answer
    rows = [r for r in answer.customers if r["customer_id"] in members]
    value = round(sum(r["predicted_clv"] for r in rows) / len(rows), 2) if rows else None
    summary = {**answer.summary, "value": value, "customers": len(rows)}
    return Answer(answer.figure, summary, answer.method, answer.table, rows)


Compute = Callable[[AsyncConnection, Analytics, str, Window, dict[str, Any]], Awaitable[Answer]]

FIGURES: dict[str, Compute] = {
    "retention": lambda c, a, t, w, o: retention(
        c, a, t, w, o.get("grain", "month"), o.get("customers", True)
    ),
    "repurchase-rate": lambda c, a, t, w, o: sales_figure(c, a, t, w, sales.repurchase_rate),
    "order-frequency": lambda c, a, t, w, o: sales_figure(c, a, t, w, sales.order_frequency),
    "average-order-value": lambda c, a, t, w, o: sales_figure(
        c, a, t, w, sales.average_order_value
    ),
    "clv": lambda c, a, t, w, o: sales_figure(c, a, t, w, sales.historic_clv),
    "churn-rate": lambda c, a, t, w, o: churn_rate(c, a, t, w),
    "nps": lambda c, a, t, w, o: surveys(
        c, a, t, w, "nps", o.get("by", "period"), o.get("grain", "month")
    ),
    "csat": lambda c, a, t, w, o: surveys(
        c, a, t, w, "csat", o.get("by", "period"), o.get("grain", "month")
    ),
    "activity": lambda c, a, t, w, o: activity(c, a, t, w),
    "predicted-clv": lambda c, a, t, w, o: predicted_clv(c, a, t, w, o.get("horizon_days", 365)),
}


async def compute(
    analytics: Analytics, tenant_id: str, figure: str, window: Window, options: dict[str, Any]
) -> Answer:
    async with analytics.engine.connect() as conn:
        return await FIGURES[figure](conn, analytics, tenant_id, window, options)
