"""Retention cohorts: customers grouped by the period of their first order; for each
later period, the share of the cohort that bought in it.

The read model counts, per (cohort, period), the customers of the cohort who placed
an order (not cancelled at ``as_of``) in that period; the cohort's size is its count
in its own period (everyone bought then, by definition).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Mapping
from datetime import date

from services.analytics.domain.figure import Answer, share
from services.analytics.domain.periods import Grain, label, periods_between

Cells = Mapping[tuple[date, date], int]


def cells_of(
    bought: Iterable[tuple[str, date]], members: Collection[str] | None = None
) -> Counter[tuple[date, date]]:
    """Count, per (cohort, period), the customers who bought in the period; a
    customer's cohort is the first period it bought in. ``members``: only those."""
    periods: dict[str, list[date]] = defaultdict(list)
    for customer_id, period in bought:
        if members is None or customer_id in members:
            periods[customer_id].append(period)
    cells: Counter[tuple[date, date]] = Counter()
    for bought_in in periods.values():
        cohort = min(bought_in)
        for period in set(bought_in):
            cells[(cohort, period)] += 1
    return cells


def cohort_of(bought: Iterable[tuple[str, date]]) -> dict[str, date]:
    first: dict[str, date] = {}
    for customer_id, period in bought:
        if customer_id not in first or period < first[customer_id]:
            first[customer_id] = period
    return first


def retention(cells: Cells, grain: Grain, last_period: date) -> Answer:
    """The cohort table up to ``last_period`` (the period of the window's end)."""
    cohorts = sorted({cohort for cohort, _ in cells})
    rows = []
    for cohort in cohorts:
        size = cells.get((cohort, cohort), 0)
        span = periods_between(cohort, last_period, grain)
        counts = [0] * (span + 1)
        for (c, period), n in cells.items():
            if c == cohort and period <= last_period:
                counts[periods_between(cohort, period, grain)] = n
        rows.append(
            {
                "cohort": label(cohort, grain),
                "cohort_start": cohort.isoformat(),
                "customers": size,
                "buyers": counts,
                "retention": [share(n, size) for n in counts],
            }
        )
    return Answer(
        "retention",
        {"grain": grain, "cohorts": len(rows), "customers": sum(r["customers"] for r in rows)},
        f"customers grouped by the {grain} of their first order (UTC); for the k-th {grain} "
        "after it, the share of the cohort that placed an order in it; cancelled orders "
        "do not count",
        table=rows,
    )
