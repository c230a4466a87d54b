"""The ranking read: a page of the kept ranking (decision 0093), one customer's risk
now, every customer scored as of a time, and the backtest of such a ranking."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncConnection

from libs.events.catalog.alerts import ChurnRules, Reason, RiskLevel
from services.alerts.domain.backtest import Judged, report
from services.alerts.domain.risk import ChurnRisk, assess, rank_key
from services.alerts.domain.signals import Context, tenant_context_of
from services.alerts.domain.value import Worth
from services.alerts.read_model import alert_list, churn_facts

if TYPE_CHECKING:  # the handlers' package imports this module
    from services.alerts.handlers import Alerts

# Customers scored between two turns of the event loop when a tenant is ranked.
YIELD_EVERY = 100


@dataclass(frozen=True, slots=True)
class RankedRisk:
    risk: ChurnRisk
    owner_id: str | None
    # When the risk was assessed (a kept one: by the projector or the sweep).
    assessed_at: datetime | None = None


def kept_risk(row: Any) -> RankedRisk:
    """A customer's kept assessment (a ``churn_customers`` row) as a ranked risk."""
    last = None if row.last_order_at == churn_facts.NEVER_BOUGHT else row.last_order_at
    return RankedRisk(
        ChurnRisk(
            row.customer_id,
            row.score,
            row.level,
            tuple(Reason.model_validate(r) for r in row.reasons or ()),
            lapse=churn_facts.lapse_of(row.lapse_rank),
            last_order_at=last,
            # Revenue at risk is kept as 0 where unknown (the page order holds no NULL).
            worth=Worth(
                row.no_purchase_probability,
                row.predicted_value,
                row.revenue_at_risk if row.no_purchase_probability is not None
                and row.predicted_value is not None else None,
            ),
        ),
        row.owner_id,
        row.assessed_at,
    )


def position_of(risk: ChurnRisk, order: churn_facts.RankOrder) -> churn_facts.RankPosition:
    """Where ``risk`` stands in the kept ranking: the next page starts after it."""
    return churn_facts.RankPosition(
        risk.score,
        churn_facts.lapse_rank(risk.lapse),
        risk.customer_id,
        (risk.worth.revenue_at_risk or 0) if order == "revenue_at_risk" else None,
    )


async def ranking_page(
    conn: AsyncConnection,
    tenant_id: str,
    now: datetime,
    *,
    order: churn_facts.RankOrder = "revenue_at_risk",
    level: RiskLevel | None = None,
    owner_id: str | None = None,
    after: churn_facts.RankPosition | None = None,
    limit: int = 50,
) -> list[RankedRisk]:
    """A page of the kept ranking: read, not scored (decision 0093)."""
    rows = await churn_facts.ranking_page(
        conn,
        tenant_id,
        now,
        order=order,
        level=level,
        owner_id=owner_id,
        after=after,
        limit=limit,
    )
    return [kept_risk(r) for r in rows]


async def current_risk(
    alerts: Alerts, conn: AsyncConnection, tenant_id: str, customer_id: str
) -> RankedRisk | None:
    """The customer's risk now: its kept assessment while that holds (its review time
    has not come), else assessed now from its facts."""
    row = await churn_facts.customer(conn, tenant_id, customer_id)
    if row is None or row.merged_into is not None:
        return None
    now = alerts.clock()
    if row.reasons is not None and row.review_at is not None and row.review_at > now:
        return kept_risk(row)
    rules, _ = await churn_facts.rules_of(conn, tenant_id)
    context = await alerts.live_context(conn, tenant_id, rules, now)
    return await _scored(conn, tenant_id, row, rules, now, context)


async def _scored(
    conn: AsyncConnection,
    tenant_id: str,
    row: Any,
    rules: ChurnRules,
    when: datetime,
    context: Context,
) -> RankedRisk:
    """One customer (its ``churn_customers`` row) scored from its facts as of ``when``."""
    facts = await churn_facts.facts_of(conn, tenant_id, when, [row.customer_id])
    risk = assess(row.customer_id, facts.get(row.customer_id, []), rules, when, context)
    return RankedRisk(risk, row.owner_id, when)


async def context_for(
    conn: AsyncConnection, tenant_id: str, rules: ChurnRules, when: datetime
) -> Context:
    """The tenant's typical repeat interval (the rules' figure if set), its lapse model
    and its value model, from its customers' orders as of ``when``."""
    purchases = await churn_facts.purchase_histories(conn, tenant_id, when)
    typical = float(rules.typical_repeat_days) if rules.typical_repeat_days is not None else None
    # Learning the lapse and value models is CPU work (a second or more for a large
    # tenant: the shapes' backtest, BG/NBD and Gamma-Gamma fits): in a thread, so
    # requests are served meanwhile.
    return await asyncio.to_thread(tenant_context_of, purchases, when, typical)


async def risks_as_of(
    conn: AsyncConnection, tenant_id: str, when: datetime, owner_id: str | None = None
) -> list[RankedRisk]:
    """Every customer of the tenant as of ``when``, ranked (no signal: score 0). The
    facts are streamed in customer order: one customer's are held at a time."""
    rules, _ = await churn_facts.rules_of(conn, tenant_id)
    context = await context_for(conn, tenant_id, rules, when)
    owners = {
        c.customer_id: c.owner_id
        for c in await churn_facts.ranked_customers(conn, tenant_id, when, owner_id)
    }
    ranked = []
    async for customer_id, facts in churn_facts.facts_by_customer(conn, tenant_id, when, owner_id):
        if customer_id in owners:
            risk = assess(customer_id, facts, rules, when, context)
            ranked.append(RankedRisk(risk, owners.pop(customer_id), when))
            if len(ranked) % YIELD_EVERY == 0:
                # Scoring is CPU work in the service's event loop: the requests the
                # process serves meanwhile wait at most this many customers' scoring.
                await asyncio.sleep(0)
    # The customers with no fact by then.
    ranked += [
        RankedRisk(assess(customer_id, [], rules, when, context), owner, when)
        for customer_id, owner in owners.items()
    ]
    ranked.sort(key=lambda r: rank_key(r.risk))
    return ranked


async def risk_of(
    alerts: Alerts, conn: AsyncConnection, tenant_id: str, customer_id: str, when: datetime
) -> RankedRisk | None:
    row = await churn_facts.customer(conn, tenant_id, customer_id)
    if row is None or row.merged_into is not None:
        return None
    rules, _ = await churn_facts.rules_of(conn, tenant_id)
    context = await alerts.past_context(conn, tenant_id, rules, when)
    return await _scored(conn, tenant_id, row, rules, when, context)


async def backtest(
    conn: AsyncConnection,
    tenant_id: str,
    cutoff: datetime,
    horizon: timedelta,
    ranked: list[RankedRisk] | None = None,
) -> dict[str, Any]:
    """Our ranking as of ``cutoff`` (``ranked``, or scored now) against who bought
    nothing in the horizon after it."""
    end = cutoff + horizon
    if ranked is None:
        ranked = await risks_as_of(conn, tenant_id, cutoff)
    orders = await churn_facts.order_histories(conn, tenant_id, end)
    judged: list[Judged] = []
    for r in ranked:
        if r.risk.days_since_order is None:
            continue  # never bought by the cutoff: cannot stop buying
        later = [t for t in orders.get(r.risk.customer_id, []) if t > cutoff]
        judged.append(
            Judged(
                r.risk.customer_id,
                len(judged),
                r.risk.days_since_order,
                r.risk.level,
                churned=not later,
            )
        )
    return {
        "cutoff": cutoff.isoformat(),
        "horizon_days": horizon.days,
        **report(judged),
        # Alerts users dismissed as wrong, by their reason: feedback beside the figures.
        "dismissals": await alert_list.dismissals(conn, tenant_id),
    }
