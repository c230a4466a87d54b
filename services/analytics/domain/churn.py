"""Churn rate per month and the revenue lost with the customers who left.

A customer is lost when it goes ``lost_after`` without an order: at the instant
``last order + lost_after`` if no order came before it. A month's churn rate is the
share of the customers active at its start (an order within ``lost_after`` before
it) who were lost during it. The revenue lost with a customer is its net revenue in
the twelve months up to its last order: the yearly business that stopped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from services.analytics.domain.figure import Answer, share
from services.analytics.domain.periods import at_start, label, next_period

YEAR = timedelta(days=365)


@dataclass(frozen=True, slots=True)
class Sale:
    placed_at: datetime
    net: int


@dataclass(frozen=True, slots=True)
class Loss:
    customer_id: str
    lost_at: datetime
    last_order_at: datetime
    revenue_lost: int


def losses(
    customer_id: str, sales: Sequence[Sale], lost_after: timedelta, as_of: datetime
) -> list[Loss]:
    """Every time the customer was lost by ``as_of`` (it may come back and leave again)."""
    ordered = sorted(sales, key=lambda s: s.placed_at)
    found = []
    for i, sale in enumerate(ordered):
        lost_at = sale.placed_at + lost_after
        following = ordered[i + 1].placed_at if i + 1 < len(ordered) else None
        if lost_at > as_of or (following is not None and following <= lost_at):
            continue
        year = sum(s.net for s in ordered[: i + 1] if s.placed_at > sale.placed_at - YEAR)
        found.append(Loss(customer_id, lost_at, sale.placed_at, year))
    return found


@dataclass(frozen=True, slots=True)
class Span:
    """A contract's run as known at ``as_of``: from its start to its (latest) end."""

    start: datetime
    end: datetime


def contract_losses(
    customer_id: str, spans: Sequence[Span], sales: Sequence[Sale], as_of: datetime
) -> list[Loss]:
    """A contract customer is lost when its contracts end unrenewed: at the end of a run
    of contracts that no other contract continues."""
    found = []
    for end in sorted({s.end for s in spans}):
        if end > as_of or any(s.start <= end < s.end for s in spans):
            continue  # not ended yet, or another contract carries on
        before = [s for s in sales if s.placed_at < end]
        last = max((s.placed_at for s in before), default=min(s.start for s in spans))
        year = sum(s.net for s in before if s.placed_at > end - YEAR)
        found.append(Loss(customer_id, end, last, year))
    return found


def active_at(sales: Sequence[Sale], instant: datetime, lost_after: timedelta) -> bool:
    before = [s.placed_at for s in sales if s.placed_at <= instant]
    # Lost exactly at ``instant``: still counted at the start of the month it is lost in.
    return bool(before) and instant - max(before) <= lost_after


def monthly_churn(
    histories: Mapping[str, Sequence[Sale]],
    months: Sequence[date],
    lost_after: timedelta,
    as_of: datetime,
    contracts: Mapping[str, Sequence[Span]] | None = None,
) -> Answer:
    """``contracts``: the customers under contract, judged by their contracts' ends
    instead of by the days since their last order."""
    rows: list[dict[str, Any]] = []
    lost_rows: list[dict[str, Any]] = []
    contracts = contracts or {}
    customers = sorted({*histories, *contracts})

    def is_active(c: str, instant: datetime) -> bool:
        if c in contracts:
            return any(s.start <= instant <= s.end for s in contracts[c])
        return active_at(histories.get(c, ()), instant, lost_after)

    every_loss = {
        c: contract_losses(c, contracts[c], histories.get(c, ()), as_of)
        if c in contracts
        else losses(c, histories.get(c, ()), lost_after, as_of)
        for c in customers
    }
    for month in months:
        start, end = at_start(month), at_start(next_period(month, "month"))
        if start > as_of:
            break
        active = {c for c in customers if is_active(c, start)}
        lost = [
            loss for c in sorted(active) for loss in every_loss[c] if start <= loss.lost_at < end
        ]
        revenue = sum(loss.revenue_lost for loss in lost)
        rows.append(
            {
                "month": label(month, "month"),
                "active_at_start": len(active),
                "lost": len(lost),
                "churn_rate": share(len(lost), len(active)),
                "revenue_lost": revenue,
            }
        )
        lost_rows += [
            {
                "customer_id": loss.customer_id,
                "month": label(month, "month"),
                "lost_at": loss.lost_at.isoformat(),
                "last_order_at": loss.last_order_at.isoformat(),
                "revenue_lost": loss.revenue_lost,
            }
            for loss in lost
        ]
    lost_total = sum(r["lost"] for r in rows)
    return Answer(
        "churn-rate",
        {
            "lost_after_days": lost_after.days,
            "lost": lost_total,
            "revenue_lost": sum(r["revenue_lost"] for r in rows),
            "months": len(rows),
        },
        f"a customer is lost once it goes {lost_after.days} days without an order "
        "(cancelled orders do not count); a month's churn rate is the share of the "
        "customers active at its start (an order in the days before) lost during it; "
        "a customer under contract is lost instead when its contracts end unrenewed; "
        "revenue lost is their net revenue in the 12 months up to their last order "
        "(up to the contract's end)",
        table=rows,
        customers=lost_rows,
    )
