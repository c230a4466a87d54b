"""Scoring from the stored facts, assessing customers, the sweep, and setting the rules.

The churn projector (``projection.ChurnFacts``) keeps per-customer facts; after each
batch it assesses the customers the batch touched as of the clock's now here, as the
sweep does: a level that moved appends ``ChurnRiskChanged`` to the customer's alerts
stream, and a rise into high also ``ChurnRiskRaised`` (once per rise: the level is kept
beside it), in the same transaction, so the outbox relay publishes exactly what was
decided.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncConnection

from libs.events.catalog import DomainEvent
from libs.events.catalog.alerts import (
    AlertAcknowledged,
    AlertClosed,
    AlertOpened,
    ChurnRiskChanged,
    ChurnRules,
    ChurnRulesSet,
    ReminderDue,
    WeeklyRiskListPublished,
)
from libs.events.store import ConcurrencyConflict, NewEvent, StreamAppend
from libs.events.write_path import HandlerContext
from libs.platform.errors import Conflict, NotFound, PreconditionFailed
from services.alerts.domain import weekly
from services.alerts.domain.alerting import Standing, react
from services.alerts.domain.facts import as_of
from services.alerts.domain.reminders import due_reminders
from services.alerts.domain.risk import ChurnRisk, assess, next_review
from services.alerts.domain.rules import check_rules
from services.alerts.domain.signals import Context
from services.alerts.handlers import churn_metrics
from services.alerts.handlers.ranking import context_for, risks_as_of
from services.alerts.read_model import alert_list, churn_facts, reminder_list

SERVICE = "alerts"
SOURCE = "/crm/alerts"
RULES_STREAM = "#rules"
# A tenant's weekly lists: ``#weekly/2026-W49``, one stream per week.
WEEKLY_STREAM = "#weekly"


@dataclass
class Alerts(HandlerContext):
    """What the handlers need, wired once by ``app.create_app`` (tests wire their own)."""

    service: ClassVar[str] = SERVICE

    # How long live assessment (projector, sweep) reuses a tenant's context: reading
    # every order of the tenant per batch would make each batch cost the tenant's size
    # (0: read it every time; scoring as of a time always reads it).
    context_seconds: float = 0.0
    _contexts: dict[str, tuple[float, str, ChurnRules, Context]] = field(
        default_factory=dict, repr=False
    )

    async def live_context(
        self, conn: AsyncConnection, tenant_id: str, rules: ChurnRules, now: datetime
    ) -> Context:
        """The tenant's context for assessing as of now, reused for ``context_seconds``
        while the rules and the day stay the same."""
        cached = self._contexts.get(tenant_id)
        day = now.date().isoformat()
        if (
            cached is not None
            and time.monotonic() - cached[0] < self.context_seconds
            and cached[1] == day
            and cached[2] == rules
        ):
            return cached[3]
        context = await context_for(conn, tenant_id, rules, now)
        if self.context_seconds > 0:
            self._contexts[tenant_id] = (time.monotonic(), day, rules, context)
        return context


async def weekly_lists_of(
    conn: AsyncConnection, tenant_id: str, week: str, now: datetime, owner_id: str | None = None
) -> list[weekly.OwnerList]:
    """The week's lists per owner, in the tenant's time zone (``weekly.InvalidWeek`` for a
    malformed week or one not begun yet)."""
    rules, _ = await churn_facts.rules_of(conn, tenant_id)
    before, end = weekly.week_bounds(week, now, ZoneInfo(rules.time_zone))
    if before >= now:
        raise weekly.InvalidWeek("the week has not begun yet")
    at_start = await risks_as_of(conn, tenant_id, before, owner_id)
    at_end = await risks_as_of(conn, tenant_id, end, owner_id)
    return weekly.weekly_lists(
        {r.risk.customer_id: r.risk for r in at_start}, [(r.risk, r.owner_id) for r in at_end]
    )


async def publish_weekly_lists(alerts: Alerts) -> int:
    """Each tenant's list of the week just ended, once its Monday 09:00 (the tenant's
    time zone) has come: one ``WeeklyRiskListPublished`` per owner on the tenant's
    ``#weekly/<week>`` stream. That stream is new only once, so a list is published
    once per tenant and week, whichever process or restart gets there first."""
    now = alerts.clock()
    async with alerts.engine.connect() as conn:
        tenants = await churn_facts.tenants(conn)
    published = 0
    for tenant_id in tenants:
        try:
            published += await _publish_weekly_list(alerts, tenant_id, now)
        except ConcurrencyConflict:
            continue  # another process published it a moment ago
    alerts.appended(published)
    return published


async def _publish_weekly_list(alerts: Alerts, tenant_id: str, now: datetime) -> int:
    # Most checks find the list out already: read without taking a write transaction.
    async with alerts.engine.connect() as conn:
        rules, _ = await churn_facts.rules_of(conn, tenant_id)
        week, _ = weekly.list_due(now, ZoneInfo(rules.time_zone))
        stream_id = f"{WEEKLY_STREAM}/{week}"
        if await alerts.store.read_stream(tenant_id, stream_id, conn=conn):
            return 0
    async with alerts.engine.begin() as conn:
        lists = await weekly_lists_of(conn, tenant_id, week, now)
        events = [
            WeeklyRiskListPublished(
                week=week,
                owner_id=o.owner_id,
                new=[r.customer_id for r in o.new],
                rising=[r.customer_id for r in o.rising],
                still_open=[r.customer_id for r in o.still_open],
            )
            for o in lists
        ] or [WeeklyRiskListPublished(week=week)]  # nobody at risk: said so, once
        await alerts.store.append(
            tenant_id,
            stream_id,
            0,
            [
                NewEvent.from_domain(e, partition_key=f"weekly/{e.owner_id or ''}", occurred_at=now)
                for e in events
            ],
            conn=conn,
        )
    return len(events)


async def set_rules(
    alerts: Alerts, tenant_id: str, rules: ChurnRules, by: str, expected: int | None
) -> tuple[ChurnRules, int]:
    """The tenant's new rules, recorded as an event and in force at once."""
    checked = check_rules(rules)
    now = alerts.clock()
    async with alerts.engine.begin() as conn:
        _, version = await churn_facts.rules_of(conn, tenant_id)
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
        await churn_facts.save_rules(conn, tenant_id, checked, new, now)
        # The kept ranking follows the new rules at the next sweep.
        await churn_facts.review_everyone(conn, tenant_id)
    alerts.appended(1)
    return checked, new


async def assess_customers(
    alerts: Alerts,
    conn: AsyncConnection,
    tenant_id: str,
    customer_ids: Iterable[str],
    context: Context | None = None,
) -> int:
    """Assess the customers as of the clock's now and append what a moved level sets
    off, and the reminders that fall due; the number of events appended. The customers'
    rows are locked first (one statement, in customer order), so the projector and the
    sweep never decide about one customer at once; then a few statements for them all
    (decision 0080): each customer is decided alone, by the same pure functions."""
    ids = sorted(set(customer_ids))
    if not ids:
        return 0
    now = alerts.clock()
    rules, _ = await churn_facts.rules_of(conn, tenant_id)
    if context is None:
        context = await alerts.live_context(conn, tenant_id, rules, now)
    rows = [
        r
        for r in (await churn_facts.lock_customers(conn, tenant_id, ids)).values()
        if r.merged_into is None
    ]
    if not rows:
        return 0
    live = [r.customer_id for r in rows]
    facts = await churn_facts.facts_of(conn, tenant_id, now, live)
    tasks = await reminder_list.open_tasks(conn, tenant_id, live)
    birthdays = await reminder_list.birthdays_of(conn, tenant_id, live)
    risks = {c: assess(c, facts.get(c, []), rules, now, context) for c in live}
    opened = await alert_list.alerts_by_id(
        conn,
        tenant_id,
        [
            r.open_alert_id
            for r in rows
            if r.open_alert_id is not None and risks[r.customer_id].level != r.level
        ],
    )
    decided: list[tuple[Any, ChurnRisk, list[DomainEvent], str | None]] = []
    due: list[ReminderDue] = []
    for row in rows:
        risk = risks[row.customer_id]
        news: list[DomainEvent] = []
        open_alert = row.open_alert_id
        if risk.level != row.level or risk.score != row.score:
            alert = opened.get(row.open_alert_id) if risk.level != row.level else None
            standing = Standing(
                row.level,
                row.version,
                row.open_alert_id,
                row.owner_id,
                alert.level if alert is not None else None,
            )
            reaction = react(tenant_id, standing, risk, now, rules)
            news += reaction.events
            open_alert = reaction.open_alert_id
        decided.append((row, risk, news, open_alert))
        due += due_reminders(
            tenant_id,
            row.customer_id,
            as_of(facts.get(row.customer_id, []), now),
            row.owner_id,
            row.registered_at,
            rules,
            tasks.get(row.customer_id, ()),
            birthdays.get(row.customer_id),
        )
    # A reminder fires once: the ones recorded for the first time now.
    fresh = await reminder_list.first_times(conn, tenant_id, due, now)
    news_of = {row.customer_id: news for row, _, news, _ in decided}
    for reminder in due:
        if reminder.reminder_id in fresh:
            fresh.discard(reminder.reminder_id)
            news_of[reminder.customer_id].append(reminder)
    moved = [
        (row, risk, news, open_alert)
        for row, risk, news, open_alert in decided
        if news or risk.level != row.level or risk.score != row.score
    ]
    versions = await alerts.store.append_many(
        tenant_id,
        [
            StreamAppend(
                row.customer_id,
                row.version,
                [
                    NewEvent.from_domain(e, partition_key=row.customer_id, occurred_at=now)
                    for e in news
                ],
            )
            for row, _, news, _ in moved
        ],
        conn=conn,
    )
    version_of = {row.customer_id: v for (row, *_), v in zip(moved, versions, strict=True)}
    await churn_facts.keep_assessments(
        conn,
        tenant_id,
        [
            churn_facts.Assessment(
                row.customer_id,
                risk.level,
                risk.score,
                version_of.get(row.customer_id, row.version),
                open_alert,
                [r.model_dump(mode="json") for r in risk.reasons],
                now,
                risk.last_order_at,
                next_review(now, (t.due_at for t in tasks.get(row.customer_id, ()))),
            )
            for row, risk, _, open_alert in decided
        ],
    )
    news_of_all = [e for _, _, news, _ in moved for e in news]
    churn_metrics.decided(news_of_all)
    await alert_list.alerts_opened(
        conn, tenant_id, [e for e in news_of_all if isinstance(e, AlertOpened)], now
    )
    for event in news_of_all:
        if isinstance(event, AlertClosed):
            await alert_list.alert_status(conn, tenant_id, event.alert_id, event.closure, now)
    return len(news_of_all)


async def retire_duplicate(
    alerts: Alerts, conn: AsyncConnection, tenant_id: str, duplicate: str, survivor: str
) -> int:
    """Merge the duplicate's facts into the survivor; a duplicate at risk leaves the
    ranking at none and its open alert is closed (the survivor, assessed next, carries
    the risk): the events appended."""
    before = await churn_facts.customer(conn, tenant_id, duplicate, lock=True)
    await churn_facts.merge(conn, tenant_id, duplicate, survivor)
    await reminder_list.move_tasks(conn, tenant_id, duplicate, survivor)
    await reminder_list.move_birthday(conn, tenant_id, duplicate, survivor)
    if before is None or (before.level == "none" and before.open_alert_id is None):
        return 0
    now = alerts.clock()
    news: list[DomainEvent] = []
    if before.level != "none":
        news.append(
            ChurnRiskChanged(
                customer_id=duplicate,
                from_level=before.level,
                to_level="none",
                score=0,
                owner_id=before.owner_id,
                as_of=now,
            )
        )
    if before.open_alert_id is not None:
        news.append(
            AlertClosed(
                alert_id=before.open_alert_id,
                customer_id=duplicate,
                closure="left_risk_level",
                reason=f"merged into {survivor}",
            )
        )
        await alert_list.alert_status(
            conn,
            tenant_id,
            before.open_alert_id,
            "left_risk_level",
            now,
            reason=f"merged into {survivor}",
        )
    version = await alerts.store.append(
        tenant_id,
        duplicate,
        before.version,
        [NewEvent.from_domain(e, partition_key=duplicate, occurred_at=now) for e in news],
        conn=conn,
    )
    await churn_facts.assessed(conn, tenant_id, duplicate, "none", 0, version, None)
    churn_metrics.decided(news)
    return len(news)


async def sweep(alerts: Alerts, batch: int = 500) -> int:
    """Assess again, as of now, the customers whose review time has come (decision
    0093): signals that grow with time alone (an order becoming overdue, a contract's
    end near) rise without any new event. A batch per write transaction; a tenant's
    context is learnt before it, so no write lock is held while it is fitted."""
    appended = 0
    now = alerts.clock()
    after: tuple[str, str] | None = None
    contexts: dict[str, Context] = {}
    while True:
        async with alerts.engine.connect() as conn:
            due = await churn_facts.due_for_review(conn, now, after, batch)
            for tenant_id in {t for t, _ in due} - contexts.keys():
                rules, _ = await churn_facts.rules_of(conn, tenant_id)
                contexts[tenant_id] = await alerts.live_context(conn, tenant_id, rules, now)
        if not due:
            break
        after = due[-1]
        churn_metrics.SWEPT.inc(len(due))
        for tenant_id in dict.fromkeys(t for t, _ in due):
            async with alerts.engine.begin() as conn:
                appended += await assess_customers(
                    alerts,
                    conn,
                    tenant_id,
                    [c for t, c in due if t == tenant_id],
                    contexts[tenant_id],
                )
    alerts.appended(appended)
    async with alerts.engine.connect() as conn:
        churn_metrics.set_levels(await churn_facts.customers_by_level(conn))
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
        row = await churn_facts.customer(conn, tenant_id, found.customer_id, lock=True)
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
        await churn_facts.assessed(
            conn, tenant_id, found.customer_id, row.level, row.score, version, still_open
        )
        await alert_list.alert_status(conn, tenant_id, alert_id, response, now, by, reason)
    alerts.appended(1)
