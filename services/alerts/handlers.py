"""Scoring from the stored facts, the churn projector, and setting the rules.

The projector keeps per-customer facts from the contacts, pipeline, tickets and
loyalty topics (one row per event, in the runtime's batch transaction). After each
batch it assesses the customers the batch touched as of the clock's now; a level
that moved appends ``ChurnRiskChanged`` to the customer's alerts stream, and a rise
into high also ``ChurnRiskRaised`` (once per rise: the level is kept beside it), in
the same transaction, so the outbox relay publishes exactly what was decided.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from libs.events import metrics as event_metrics
from libs.events.catalog import DomainEvent
from libs.events.catalog.alerts import (
    AlertAcknowledged,
    AlertClosed,
    AlertOpened,
    ChurnRules,
    ChurnRulesSet,
)
from libs.events.catalog.contacts import CustomerMergedInto, CustomerRegistered, OwnerChanged
from libs.events.consumer import ReceivedEvent
from libs.events.kafka import service_topic
from libs.events.projection import Projection
from libs.events.store import EventStore, NewEvent
from libs.platform.errors import Conflict, NotFound, PreconditionFailed
from services.alerts import alert_list, metrics, read_model, reminder_list
from services.alerts.domain.alerting import Standing, react
from services.alerts.domain.backtest import Judged, report
from services.alerts.domain.facts import as_of, typical_repeat_days
from services.alerts.domain.reminders import due_reminders
from services.alerts.domain.risk import ChurnRisk, assess, rank_key
from services.alerts.domain.rules import check_rules
from services.alerts.domain.signals import Context
from services.alerts.domain.sources import TOPICS, fact_of

SERVICE = "alerts"
SOURCE = "/crm/alerts"
RULES_STREAM = "#rules"


@dataclass
class Alerts:
    """What the handlers need, wired once by ``app.create_app`` (tests wire their own)."""

    store: EventStore
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    # Called after appending events (the relay's wake-up).
    on_append: Callable[[], None] = field(default=lambda: None)

    @property
    def engine(self) -> AsyncEngine:
        return self.store.engine

    def appended(self, count: int) -> None:
        if count:
            event_metrics.EVENTS_APPENDED.labels(SERVICE).inc(count)
            self.on_append()


@dataclass(frozen=True, slots=True)
class RankedRisk:
    risk: ChurnRisk
    owner_id: str | None


async def context_for(
    conn: AsyncConnection, tenant_id: str, rules: ChurnRules, when: datetime
) -> Context:
    """The tenant's typical repeat interval as of ``when`` (the rules' figure if set)."""
    if rules.typical_repeat_days is not None:
        return Context(float(rules.typical_repeat_days))
    orders = await read_model.order_facts(conn, tenant_id, when)
    return Context(typical_repeat_days(as_of(f, when) for f in orders.values()))


async def risks_as_of(
    conn: AsyncConnection, tenant_id: str, when: datetime, owner_id: str | None = None
) -> list[RankedRisk]:
    """Every customer of the tenant as of ``when``, ranked (no signal: score 0)."""
    rules, _ = await read_model.rules_of(conn, tenant_id)
    context = await context_for(conn, tenant_id, rules, when)
    customers = await read_model.ranked_customers(conn, tenant_id, when, owner_id)
    facts = await read_model.facts_of(conn, tenant_id, when)
    ranked = [
        RankedRisk(
            assess(c.customer_id, facts.get(c.customer_id, []), rules, when, context), c.owner_id
        )
        for c in customers
    ]
    ranked.sort(key=lambda r: rank_key(r.risk))
    return ranked


async def risk_of(
    conn: AsyncConnection, tenant_id: str, customer_id: str, when: datetime
) -> RankedRisk | None:
    row = await read_model.customer(conn, tenant_id, customer_id)
    if row is None or row.merged_into is not None:
        return None
    rules, _ = await read_model.rules_of(conn, tenant_id)
    context = await context_for(conn, tenant_id, rules, when)
    facts = await read_model.facts_of(conn, tenant_id, when, [customer_id])
    return RankedRisk(
        assess(customer_id, facts.get(customer_id, []), rules, when, context), row.owner_id
    )


async def backtest(
    conn: AsyncConnection, tenant_id: str, cutoff: datetime, horizon: timedelta
) -> dict[str, Any]:
    """Our ranking as of ``cutoff`` against who bought nothing in the horizon after it."""
    end = cutoff + horizon
    ranked = await risks_as_of(conn, tenant_id, cutoff)
    orders = await read_model.order_facts(conn, tenant_id, end)
    judged = []
    for r in ranked:
        if r.risk.days_since_order is None:
            continue  # never bought by the cutoff: cannot stop buying
        later = [
            o for o in as_of(orders.get(r.risk.customer_id, []), end).orders if o.placed_at > cutoff
        ]
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


async def set_rules(
    alerts: Alerts, tenant_id: str, rules: ChurnRules, by: str, expected: int | None
) -> tuple[ChurnRules, int]:
    """The tenant's new rules, recorded as an event and in force at once."""
    checked = check_rules(rules)
    now = alerts.clock()
    async with alerts.engine.begin() as conn:
        _, version = await read_model.rules_of(conn, tenant_id)
        if expected is not None and expected != version:
            raise PreconditionFailed("the rules were changed meanwhile", version=version)
        event = ChurnRulesSet(rules=checked, by=by)
        new = await alerts.store.append(
            tenant_id,
            RULES_STREAM,
            version,
            [NewEvent.from_domain(event, partition_key="rules", occurred_at=now)],
            conn=conn,
        )
        await read_model.save_rules(conn, tenant_id, checked, new, now)
    alerts.appended(1)
    return checked, new


async def assess_customers(
    alerts: Alerts, conn: AsyncConnection, tenant_id: str, customer_ids: Iterable[str]
) -> int:
    """Assess the customers as of the clock's now and append what a moved level sets
    off, and the reminders that fall due; the number of events appended. Each
    customer's row is locked, so the projector and the sweep never decide about one
    customer at once."""
    ids = sorted(set(customer_ids))
    now = alerts.clock()
    rules, _ = await read_model.rules_of(conn, tenant_id)
    context = await context_for(conn, tenant_id, rules, now)
    facts = await read_model.facts_of(conn, tenant_id, now, ids)
    appended = 0
    for customer_id in ids:
        row = await read_model.customer(conn, tenant_id, customer_id, lock=True)
        if row is None or row.merged_into is not None:
            continue
        known = facts.get(customer_id, [])
        risk = assess(customer_id, known, rules, now, context)
        news: list[DomainEvent] = []
        open_alert = row.open_alert_id
        if risk.level != row.level or risk.score != row.score:
            standing = Standing(row.level, row.version, row.open_alert_id, row.owner_id)
            reaction = react(tenant_id, standing, risk, now)
            news += reaction.events
            open_alert = reaction.open_alert_id
        for reminder in due_reminders(
            tenant_id, customer_id, as_of(known, now), row.owner_id, row.registered_at, rules
        ):
            if await reminder_list.first_time(conn, tenant_id, reminder, now):
                news.append(reminder)
        if not news and risk.level == row.level and risk.score == row.score:
            continue
        version = await alerts.store.append(
            tenant_id,
            customer_id,
            row.version,
            [NewEvent.from_domain(e, partition_key=customer_id, occurred_at=now) for e in news],
            conn=conn,
        )
        await read_model.assessed(
            conn, tenant_id, customer_id, risk.level, risk.score, version, open_alert
        )
        appended += len(news)
        metrics.decided(news)
        for event in news:
            if isinstance(event, AlertOpened):
                await alert_list.alert_opened(conn, tenant_id, event, now)
            elif isinstance(event, AlertClosed):
                await alert_list.alert_status(conn, tenant_id, event.alert_id, event.closure, now)
    return appended


async def sweep(alerts: Alerts, batch: int = 500) -> int:
    """Assess every customer as of now: signals that grow with time alone (an order
    becoming overdue, a contract's end coming near) rise without any new event."""
    appended = 0
    async with alerts.engine.connect() as conn:
        everyone = await read_model.every_customer(conn)
    for tenant_id, customer_ids in everyone.items():
        for start in range(0, len(customer_ids), batch):
            async with alerts.engine.begin() as conn:
                appended += await assess_customers(
                    alerts, conn, tenant_id, customer_ids[start : start + batch]
                )
    alerts.appended(appended)
    async with alerts.engine.connect() as conn:
        metrics.set_levels(await read_model.customers_by_level(conn))
    return appended


async def respond_to_alert(
    alerts: Alerts,
    tenant_id: str,
    alert_id: str,
    response: str,
    by: str,
    reason: str = "",
) -> None:
    """Acknowledge, resolve or dismiss an alert (a dismissal's reason is feedback)."""
    now = alerts.clock()
    async with alerts.engine.begin() as conn:
        found = await alert_list.alert(conn, tenant_id, alert_id)
        if found is None:
            raise NotFound(f"alert {alert_id} not found")
        if found.status not in ("open", "acknowledged") or (
            response == "acknowledged" and found.status == "acknowledged"
        ):
            raise Conflict(f"the alert is {found.status}", alert_status=found.status)
        row = await read_model.customer(conn, tenant_id, found.customer_id, lock=True)
        assert row is not None  # an alert is only opened for a known customer
        event: DomainEvent
        if response == "acknowledged":
            event = AlertAcknowledged(alert_id=alert_id, customer_id=found.customer_id, by=by)
        else:
            event = AlertClosed(
                alert_id=alert_id,
                customer_id=found.customer_id,
                closure="resolved" if response == "resolved" else "dismissed",
                reason=reason,
                by=by,
            )
        version = await alerts.store.append(
            tenant_id,
            found.customer_id,
            row.version,
            [NewEvent.from_domain(event, partition_key=found.customer_id, occurred_at=now)],
            conn=conn,
        )
        still_open = row.open_alert_id if response == "acknowledged" else None
        await read_model.assessed(
            conn, tenant_id, found.customer_id, row.level, row.score, version, still_open
        )
        await alert_list.alert_status(conn, tenant_id, alert_id, response, now, by, reason)
    alerts.appended(1)


class ChurnFacts(Projection):
    """Per-customer churn facts from the four topics, and the levels they lead to."""

    name: ClassVar[str] = "alerts_churn_facts"

    def __init__(self, alerts: Alerts, generation: int = 1) -> None:
        super().__init__(generation)
        self.alerts = alerts
        self.topics = [service_topic(t) for t in TOPICS]

    async def apply(self, conn: AsyncConnection, event: ReceivedEvent) -> None:
        await self.apply_many(conn, [event])

    async def apply_many(self, conn: AsyncConnection, events: Sequence[ReceivedEvent]) -> None:
        touched: dict[str, set[str]] = {}
        for received in events:
            tenant_id = received.envelope.tenantid
            customer_id = await self._record(conn, tenant_id, received)
            if customer_id is not None:
                touched.setdefault(tenant_id, set()).add(customer_id)
        appended = 0
        for tenant_id, customer_ids in touched.items():
            appended += await self._assess(conn, tenant_id, customer_ids)
        self.alerts.appended(appended)

    async def _record(
        self, conn: AsyncConnection, tenant_id: str, received: ReceivedEvent
    ) -> str | None:
        """Keep what the event tells the rules; the customer it touched, if any."""
        event: Any = received.event
        envelope = received.envelope
        if isinstance(event, CustomerRegistered):
            await read_model.know_customer(
                conn,
                tenant_id,
                event.customer_id,
                registered_at=event.registered_at,
                owner_id=event.owner_id,
            )
            return event.customer_id
        if isinstance(event, OwnerChanged):
            await read_model.set_owner(conn, tenant_id, event.customer_id, event.to_owner_id)
            return None
        if isinstance(event, CustomerMergedInto):
            await read_model.merge(conn, tenant_id, event.customer_id, event.survivor_id)
            return event.survivor_id
        fact = fact_of(event, envelope.id, envelope.time)
        if fact is None:
            return None
        # Every event that makes a fact is about one customer (``customer_id``).
        customer_id = await read_model.survivor_of(conn, tenant_id, str(event.customer_id))
        await read_model.add_fact(conn, tenant_id, customer_id, fact)
        return customer_id

    async def _assess(self, conn: AsyncConnection, tenant_id: str, customer_ids: set[str]) -> int:
        return await assess_customers(self.alerts, conn, tenant_id, customer_ids)


def churn_facts_factory(alerts: Alerts) -> Callable[[int], ChurnFacts]:
    return lambda generation: ChurnFacts(alerts, generation)
