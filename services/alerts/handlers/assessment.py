"""Assessing customers: as of the clock's now, from the stored facts, by the projector
after each batch and by the sweep as time alone passes (decision 0093). A level that
moved appends ``ChurnRiskChanged`` to the customer's alerts stream, and a rise into high
also ``ChurnRiskRaised`` (once per rise: the level is kept beside it), with the
reminders that fall due, in the same transaction, so the outbox relay publishes exactly
what was decided."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from libs.events.catalog import DomainEvent
from libs.events.catalog.alerts import AlertClosed, AlertOpened, ChurnRules, ReminderDue
from libs.events.store import NewEvent, StreamAppend
from services.alerts.domain.alerting import Standing, react
from services.alerts.domain.facts import as_of
from services.alerts.domain.reminders import FollowedTask, due_reminders
from services.alerts.domain.risk import ChurnRisk, assess, next_review
from services.alerts.domain.signals import Context
from services.alerts.handlers import churn_metrics
from services.alerts.handlers.context import Alerts
from services.alerts.read_model import alert_list, churn_facts, reminder_list

# One customer decided: its row as locked, its risk now, the events that sets off, and
# the alert left open.
Decided = tuple[Any, ChurnRisk, list[DomainEvent], str | None]


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
    decided = await _react_to_moves(conn, tenant_id, rows, risks, rules, now)
    due: list[ReminderDue] = []
    for row in rows:
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
    await _add_fresh_reminders(conn, tenant_id, due, decided, now)
    moved = [
        (row, risk, news, open_alert)
        for row, risk, news, open_alert in decided
        if news or risk.level != row.level or risk.score != row.score
    ]
    version_of = await _append(alerts, conn, tenant_id, moved, now)
    await _keep_assessments(conn, tenant_id, decided, version_of, tasks, now)
    news_of_all = [e for _, _, news, _ in moved for e in news]
    churn_metrics.decided(news_of_all)
    await _follow_alerts(conn, tenant_id, news_of_all, now)
    return len(news_of_all)


async def _react_to_moves(
    conn: AsyncConnection,
    tenant_id: str,
    rows: Sequence[Any],
    risks: Mapping[str, ChurnRisk],
    rules: ChurnRules,
    now: datetime,
) -> list[Decided]:
    """What each customer's moved level or score sets off (``alerting.react``); the
    alerts a change of level may close are read first, in one statement."""
    opened = await alert_list.alerts_by_id(
        conn,
        tenant_id,
        [
            r.open_alert_id
            for r in rows
            if r.open_alert_id is not None and risks[r.customer_id].level != r.level
        ],
    )
    decided: list[Decided] = []
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
                row.score,
            )
            reaction = react(tenant_id, standing, risk, now, rules)
            news += reaction.events
            open_alert = reaction.open_alert_id
        decided.append((row, risk, news, open_alert))
    return decided


async def _add_fresh_reminders(
    conn: AsyncConnection,
    tenant_id: str,
    due: Sequence[ReminderDue],
    decided: Sequence[Decided],
    now: datetime,
) -> None:
    # A reminder fires once: the ones recorded for the first time now.
    fresh = await reminder_list.first_times(conn, tenant_id, due, now)
    news_of = {row.customer_id: news for row, _, news, _ in decided}
    for reminder in due:
        if reminder.reminder_id in fresh:
            fresh.discard(reminder.reminder_id)
            news_of[reminder.customer_id].append(reminder)


async def _append(
    alerts: Alerts,
    conn: AsyncConnection,
    tenant_id: str,
    moved: Sequence[Decided],
    now: datetime,
) -> dict[str, int]:
    """Each moved customer's events on its alerts stream; its new version."""
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
    return {row.customer_id: v for (row, *_), v in zip(moved, versions, strict=True)}


async def _keep_assessments(
    conn: AsyncConnection,
    tenant_id: str,
    decided: Sequence[Decided],
    version_of: Mapping[str, int],
    tasks: Mapping[str, list[FollowedTask]],
    now: datetime,
) -> None:
    # Kept so that the ranking is read, not computed; reviewed again when time alone
    # can change it (decision 0093).
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
                risk.worth,
                risk.lapse,
            )
            for row, risk, _, open_alert in decided
        ],
    )


async def _follow_alerts(
    conn: AsyncConnection, tenant_id: str, news: Sequence[DomainEvent], now: datetime
) -> None:
    # The alerts users work follow the events: opened, and closed.
    await alert_list.alerts_opened(
        conn, tenant_id, [e for e in news if isinstance(e, AlertOpened)], now
    )
    for event in news:
        if isinstance(event, AlertClosed):
            await alert_list.alert_status(conn, tenant_id, event.alert_id, event.closure, now)


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
