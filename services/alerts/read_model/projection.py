"""The churn projector: per-customer facts from the contacts, pipeline, tickets and
loyalty topics (one row per event, in the runtime's batch transaction), and the
assessment of the customers a batch touched, in the same transaction (see
``handlers.assess_customers``)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import Any, ClassVar

from sqlalchemy.ext.asyncio import AsyncConnection

from libs.events.catalog.contacts import (
    CustomerMerged,
    CustomerMergedInto,
    CustomerRegistered,
    OwnerChanged,
    PersonalDataErased,
    ProfileChanged,
)
from libs.events.catalog.pipeline import TaskCompleted, TaskCreated, TaskRescheduled
from libs.events.consumer import ReceivedEvent
from libs.events.kafka import service_topic
from libs.events.projection import Projection
from libs.platform.birthdays import UNCHANGED, birthday_news
from services.alerts.domain.facts import Fact
from services.alerts.domain.sources import TOPICS, fact_of
from services.alerts.handlers import Alerts, assess_customers, churn_metrics, retire_duplicate
from services.alerts.read_model import churn_facts, reminder_list

# Seconds between counts of customers per level after projector batches.
LEVELS_COUNTED_EVERY = 5.0


# Events applied one at a time in their place in a batch: they change who a customer
# is (a merge), its owner, its birthday or its tasks. Every other event joins a run.
ONE_AT_A_TIME = (
    ProfileChanged,
    CustomerMerged,
    CustomerMergedInto,
    PersonalDataErased,
    OwnerChanged,
    TaskCreated,
    TaskRescheduled,
    TaskCompleted,
)


class ChurnFacts(Projection):
    """Per-customer churn facts from the four topics, and the levels they lead to.

    A batch's facts and registrations are recorded in runs, a few statements per run
    (decision 0080); ``one_at_a_time`` records every event by itself and assesses each
    customer alone: the reference the runs are held to (``tests/test_batched.py``)."""

    name: ClassVar[str] = "alerts_churn_facts"

    def __init__(self, alerts: Alerts, generation: int = 1, *, one_at_a_time: bool = False) -> None:
        super().__init__(generation)
        self.alerts = alerts
        self.one_at_a_time = one_at_a_time
        # Events appended for merged duplicates in the batch in hand.
        self.retired = 0
        self.next_count = 0.0
        self.topics = [service_topic(t) for t in TOPICS]

    async def apply(self, conn: AsyncConnection, event: ReceivedEvent) -> None:
        await self.apply_many(conn, [event])

    async def apply_many(self, conn: AsyncConnection, events: Sequence[ReceivedEvent]) -> None:
        touched: dict[str, set[str]] = {}
        run: list[ReceivedEvent] = []
        for received in events:
            if not self.one_at_a_time and not isinstance(received.event, ONE_AT_A_TIME):
                run.append(received)
                continue
            # The run before this event is recorded first: a customer's events keep
            # their order (a fact before a merge moves with the duplicate's facts).
            await self._record_run(conn, run, touched)
            run = []
            tenant_id = received.envelope.tenantid
            customer_id = await self._record(conn, tenant_id, received)
            if customer_id is not None:
                touched.setdefault(tenant_id, set()).add(customer_id)
        await self._record_run(conn, run, touched)
        appended, self.retired = self.retired, 0
        for tenant_id, customer_ids in touched.items():
            if self.one_at_a_time:
                for customer_id in sorted(customer_ids):
                    appended += await self._assess(conn, tenant_id, {customer_id})
            else:
                appended += await self._assess(conn, tenant_id, customer_ids)
        self.alerts.appended(appended)
        if touched and (appended or time.monotonic() >= self.next_count):
            # The gauge of customers per level: counted when a level may have moved,
            # otherwise (new customers at none) at most every few seconds.
            self.next_count = time.monotonic() + LEVELS_COUNTED_EVERY
            churn_metrics.set_levels(await churn_facts.customers_by_level(conn))

    async def _record_run(
        self, conn: AsyncConnection, run: Sequence[ReceivedEvent], touched: dict[str, set[str]]
    ) -> None:
        """Record a run of registrations and facts (no merge among them, so who each
        customer is stays put through the run): per tenant, one survivor lookup, one
        upsert of the registered, one of the birthdays, one insert of the facts."""
        by_tenant: dict[str, list[ReceivedEvent]] = {}
        for received in run:
            by_tenant.setdefault(received.envelope.tenantid, []).append(received)
        for tenant_id, received_events in by_tenant.items():
            registered: dict[str, tuple[datetime, str | None]] = {}
            birthdays: dict[str, date | None] = {}
            found: list[tuple[str, Fact]] = []
            for received in received_events:
                event: Any = received.event
                if isinstance(event, CustomerRegistered):
                    # A customer registered twice in a run: its last registration holds.
                    registered[event.customer_id] = (event.registered_at, event.owner_id)
                    birthdays[event.customer_id] = event.birthday
                    continue
                fact = fact_of(event, received.envelope.id, received.envelope.time)
                if fact is not None:
                    # Every event that makes a fact is about one customer (``customer_id``).
                    found.append((str(event.customer_id), fact))
            survivors = await churn_facts.survivors_of(conn, tenant_id, {c for c, _ in found})
            await churn_facts.register_customers(conn, tenant_id, registered)
            await reminder_list.set_birthdays(conn, tenant_id, birthdays)
            await churn_facts.add_facts(conn, tenant_id, [(survivors[c], f) for c, f in found])
            if registered or found:
                touched.setdefault(tenant_id, set()).update(
                    registered, (survivors[c] for c, _ in found)
                )

    async def _record(
        self, conn: AsyncConnection, tenant_id: str, received: ReceivedEvent
    ) -> str | None:
        """Keep what the event tells the rules; the customer it touched, if any."""
        event: Any = received.event
        envelope = received.envelope
        if isinstance(event, CustomerRegistered):
            await churn_facts.know_customer(
                conn,
                tenant_id,
                event.customer_id,
                registered_at=event.registered_at,
                owner_id=event.owner_id,
            )
            await reminder_list.set_birthday(conn, tenant_id, event.customer_id, event.birthday)
            return event.customer_id
        if isinstance(event, ProfileChanged | CustomerMerged | PersonalDataErased):
            return await self._birthday(conn, tenant_id, event)
        if isinstance(event, OwnerChanged):
            await churn_facts.set_owner(conn, tenant_id, event.customer_id, event.to_owner_id)
            return None
        if isinstance(event, CustomerMergedInto):
            self.retired += await retire_duplicate(
                self.alerts, conn, tenant_id, event.customer_id, event.survivor_id
            )
            return event.survivor_id
        if isinstance(event, TaskCreated | TaskRescheduled | TaskCompleted):
            return await self._follow(conn, tenant_id, event)
        fact = fact_of(event, envelope.id, envelope.time)
        if fact is None:
            return None
        # Every event that makes a fact is about one customer (``customer_id``).
        customer_id = await churn_facts.survivor_of(conn, tenant_id, str(event.customer_id))
        await churn_facts.add_fact(conn, tenant_id, customer_id, fact)
        return customer_id

    async def _birthday(
        self,
        conn: AsyncConnection,
        tenant_id: str,
        event: ProfileChanged | CustomerMerged | PersonalDataErased,
    ) -> str | None:
        """Keep the month and day of a birthday set, absorbed from a duplicate or
        cleared; erasure forgets it (and the reminders about it)."""
        if isinstance(event, PersonalDataErased):
            await reminder_list.erase_birthday(conn, tenant_id, event.customer_id)
            return None
        news = birthday_news(event)  # the platform's one rule (libs/platform/birthdays.py)
        if news is UNCHANGED:
            return None
        await reminder_list.set_birthday(conn, tenant_id, event.customer_id, news)
        # Assessed at once: a birthday learnt inside the window is reminded now.
        return event.customer_id

    async def _follow(
        self,
        conn: AsyncConnection,
        tenant_id: str,
        event: TaskCreated | TaskRescheduled | TaskCompleted,
    ) -> str | None:
        """Follow a customer's follow-up task for the overdue reminder (a task about a
        lead only names no customer: nobody to file it under)."""
        if isinstance(event, TaskCreated):
            if event.customer_id is None:
                return None
            customer_id = await churn_facts.survivor_of(conn, tenant_id, event.customer_id)
            await churn_facts.know_customer(conn, tenant_id, customer_id)
            await reminder_list.task_created(
                conn, tenant_id, event.task_id, customer_id, event.assignee_id, event.due_at
            )
            return customer_id
        if isinstance(event, TaskRescheduled):
            return await reminder_list.task_changed(
                conn, tenant_id, event.task_id, due_at=event.due_at
            )
        return await reminder_list.task_changed(conn, tenant_id, event.task_id, completed=True)

    async def _assess(self, conn: AsyncConnection, tenant_id: str, customer_ids: set[str]) -> int:
        return await assess_customers(self.alerts, conn, tenant_id, customer_ids)


def churn_facts_factory(alerts: Alerts) -> Callable[[int], ChurnFacts]:
    return lambda generation: ChurnFacts(alerts, generation)
