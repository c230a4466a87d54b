"""The churn projector applies a batch in runs (decision 0080): the same histories,
cut into the same batches, recorded and assessed in runs and one at a time (every
event by itself, every customer assessed alone) leave the same facts, customers,
alerts, reminders, tasks and birthdays, and append the same events. A redelivered
batch changes nothing. On both PostgreSQL and SQLite (the embedded default)."""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from libs.events.catalog import DomainEvent
from libs.events.catalog.alerts import AlertOpened, ChurnRiskChanged, ReminderDue
from libs.events.catalog.contacts import (
    CustomerMerged,
    CustomerMergedInto,
    CustomerRegistered,
    InteractionLogged,
    KeyContactChanged,
    OwnerChanged,
    ProfileChanged,
)
from libs.events.catalog.pipeline import (
    ContractSigned,
    OrderCancelled,
    OrderPlaced,
    TaskCompleted,
    TaskCreated,
)
from libs.events.catalog.tickets import NpsAnswered, TicketOpened
from libs.events.consumer import ReceivedEvent
from libs.events.envelope import EventEnvelope
from libs.events.kafka import KafkaSettings
from libs.events.projection import ProjectionRunner
from libs.events.store import EventStore
from libs.platform.db import create_engine
from libs.platform.migrations import prepare_schema
from services.alerts.domain.sources import SOURCES
from services.alerts.handlers import Alerts
from services.alerts.migrations import FOLDER as MIGRATIONS
from services.alerts.read_model import alert_list, churn_facts, reminder_list
from services.alerts.read_model.projection import ChurnFacts
from testing.consumers import Clock
from testing.fixtures import fresh_database

T0 = datetime.fromisoformat("2026-11-30T09:00:00+00:00")
CUSTOMERS = ("c-1", "c-2", "c-3", "c-4", "c-5")
TABLES: list[tuple[Any, tuple[str, ...]]] = [
    (churn_facts.facts, ("tenant_id", "event_id")),
    (churn_facts.customers, ("tenant_id", "customer_id")),
    (alert_list.alerts_table, ("tenant_id", "alert_id")),
    (reminder_list.reminders, ("tenant_id", "reminder_id")),
    (reminder_list.followed_tasks, ("tenant_id", "task_id")),
    (reminder_list.birthdays, ("tenant_id", "customer_id")),
]


def ago(rng: random.Random, most: float) -> datetime:
    return T0 - timedelta(days=rng.uniform(0, most))


def history(seed: int) -> list[tuple[DomainEvent, str, datetime]]:
    """A random history of two tenants' customers: (event, tenant, envelope time).

    Complaints and key contact changes push customers up, orders and interactions
    pull them down; registrations, owner changes, birthdays, follow-up tasks, a
    contract ending soon and a merge (c-5 into c-1) come in among them."""
    rng = random.Random(seed)
    found: list[tuple[DomainEvent, str, datetime]] = []
    orders: list[tuple[str, str, str]] = []
    tasks: list[tuple[str, str, str]] = []
    merged: set[str] = set()
    for n in range(rng.randint(40, 90)):
        tenant = rng.choice(("acme", "acme", "globex"))
        customer = rng.choice(CUSTOMERS)
        roll = rng.random()
        event: DomainEvent
        if roll < 0.12:
            event = CustomerRegistered(
                customer_id=customer,
                tenant_id=tenant,
                kind="company",
                name=f"Customer {customer}",
                owner_id=rng.choice(("rep-1", "rep-2", None)),
                registered_at=ago(rng, 400),
                birthday=rng.choice((None, date(1980, 12, 3), date(1975, 6, 1))),
            )
        elif roll < 0.32:
            event = OrderPlaced(
                order_id=f"o-{n}",
                customer_id=customer,
                currency="CNY",
                total=rng.randint(1, 50) * 1000,
                placed_at=ago(rng, 300),
            )
            orders.append((tenant, customer, f"o-{n}"))
        elif roll < 0.36 and orders:
            tenant, customer, order_id = rng.choice(orders)
            event = OrderCancelled(order_id=order_id, customer_id=customer)
        elif roll < 0.54:
            event = TicketOpened(
                ticket_id=f"t-{n}",
                customer_id=customer,
                subject="late delivery",
                channel="phone",
                category="complaint",
                priority="high",
                opened_by="agent-1",
            )
        elif roll < 0.62:
            event = KeyContactChanged(
                customer_id=customer, role="purchasing", previous_contact_id="p-1", contact_id="p-2"
            )
        elif roll < 0.70:
            event = InteractionLogged(
                customer_id=customer,
                interaction_id=f"i-{n}",
                channel="phone",
                direction="outbound",
                by="rep-1",
                occurred_at=ago(rng, 120),
            )
        elif roll < 0.74:
            event = NpsAnswered(
                survey_id=f"s-{n}", customer_id=customer, score=rng.randint(0, 10), group="passive"
            )
        elif roll < 0.78:
            event = ContractSigned(
                contract_id=f"k-{n}",
                customer_id=customer,
                title="support",
                value=1000,
                currency="CNY",
                starts_on=date(2025, 12, 1),
                ends_on=(T0 + timedelta(days=rng.randint(5, 60))).date(),
            )
        elif roll < 0.83:
            event = TaskCreated(
                task_id=f"task-{n}",
                customer_id=customer,
                title="call back",
                due_at=ago(rng, 10),
                assignee_id="rep-2",
                created_by="rep-1",
            )
            tasks.append((tenant, customer, f"task-{n}"))
        elif roll < 0.86 and tasks:
            tenant, customer, task_id = rng.choice(tasks)
            event = TaskCompleted(task_id=task_id, customer_id=customer, by="rep-2")
        elif roll < 0.91:
            event = OwnerChanged(
                customer_id=customer, from_owner_id=None, to_owner_id=rng.choice(("rep-1", "rep-3"))
            )
        elif roll < 0.95:
            event = ProfileChanged(customer_id=customer, birthday=date(1990, 12, 5))
        elif "c-5" + tenant not in merged:
            merged.add("c-5" + tenant)
            found.append((CustomerMergedInto(customer_id="c-5", survivor_id="c-1"), tenant, T0))
            event = CustomerMerged(customer_id="c-1", duplicate_id="c-5")
        else:
            continue
        found.append((event, tenant, ago(rng, 40)))
    return found


def batches_of(seed: int) -> list[list[ReceivedEvent]]:
    """The history as the runtime hands it over: cut into batches at random."""
    rng = random.Random(seed * 7919)
    received = [
        ReceivedEvent(
            EventEnvelope(
                id=str(uuid.UUID(int=rng.getrandbits(128))),
                source="/crm/tests",
                type=type(event).type_name,
                subject=tenant,
                time=at,
                tenantid=tenant,
                partitionkey=tenant,
                sequence=1,
                data=event.model_dump(mode="json"),
            ),
            event,
            "crm.tests.events",
            0,
            offset,
        )
        for offset, (event, tenant, at) in enumerate(history(seed))
    ]
    cuts = sorted(rng.sample(range(1, len(received)), rng.randint(1, 6)))
    return [received[a:b] for a, b in zip([0, *cuts], [*cuts, len(received)], strict=True)]


async def snapshot(engine: AsyncEngine) -> dict[str, Any]:
    """Every row of the projector's tables, and every event appended (less its random
    id and the time it was recorded)."""
    found: dict[str, Any] = {}
    async with engine.connect() as conn:
        for table, key in TABLES:
            rows = await conn.execute(select(table).order_by(*(table.c[k] for k in key)))
            found[table.name] = [dict(r._mapping) for r in rows]
    stored = await EventStore(engine).read_all(limit=100_000)
    found["events"] = [
        (e.tenant_id, e.stream_id, e.version, e.type, e.partition_key, e.data, e.occurred_at)
        for e in stored
    ]
    return found


async def apply(
    engine: AsyncEngine, batches: list[list[ReceivedEvent]], *, one_at_a_time: bool
) -> ProjectionRunner:
    """Each batch through the projection runtime (its own transaction), the clock a
    day later for each (it stays where the last batch found it)."""
    await prepare_schema(engine, MIGRATIONS)
    clock = Clock(T0)
    projection = ChurnFacts(Alerts(EventStore(engine), clock=clock), one_at_a_time=one_at_a_time)
    runner = ProjectionRunner(projection, engine, KafkaSettings(), SOURCES)
    await runner.create_tables()
    for n, batch in enumerate(batches):
        if n:
            clock.advance(days=1)
        await runner.apply_batch(batch, {})
    return runner


@pytest_asyncio.fixture
async def another_pg_url(postgres_server: str) -> AsyncIterator[str]:
    """A second fresh database, beside ``pg_url``'s."""
    async with fresh_database(postgres_server) as url:
        yield url


@pytest.fixture(params=["postgresql", "sqlite"])
def two_urls(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'runs.db'}", f"sqlite:///{tmp_path / 'single.db'}"
    return str(request.getfixturevalue("pg_url")), str(request.getfixturevalue("another_pg_url"))


@pytest_asyncio.fixture
async def two_databases(
    two_urls: tuple[str, str],
) -> AsyncIterator[tuple[AsyncEngine, AsyncEngine]]:
    """Two fresh databases on one backend: one applied in runs, one one at a time."""
    engines = (create_engine(two_urls[0]), create_engine(two_urls[1]))
    yield engines
    for engine in engines:
        await engine.dispose()


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5, 6])
async def test_batches_in_runs_leave_what_one_event_at_a_time_leaves(
    two_databases: tuple[AsyncEngine, AsyncEngine], seed: int
) -> None:
    runs, single = two_databases
    batches = batches_of(seed)

    await apply(runs, batches, one_at_a_time=False)
    await apply(single, batches, one_at_a_time=True)

    in_runs, one_by_one = await snapshot(runs), await snapshot(single)
    for name in in_runs:
        assert in_runs[name] == one_by_one[name], name
    # Histories that set something off: risks moved, and (over the seeds) alerts and
    # reminders fired, so the comparison above compares more than empty tables.
    types = {e[3] for e in in_runs["events"]}
    assert ChurnRiskChanged.type_name in types
    assert in_runs["churn_facts"] and in_runs["churn_customers"]
    if seed in (1, 2):
        assert {AlertOpened.type_name, ReminderDue.type_name} <= types


async def test_a_redelivered_batch_changes_nothing(
    two_databases: tuple[AsyncEngine, AsyncEngine],
) -> None:
    engine, _ = two_databases
    batches = batches_of(3)
    runner = await apply(engine, batches, one_at_a_time=False)
    before = await snapshot(engine)

    # A batch redelivered after its transaction committed (its offsets were not): the
    # runtime knows its events' ids.
    for batch in (batches[0], batches[-1]):
        await runner.apply_batch(batch, {})
    assert await snapshot(engine) == before
    # The projector's own writes are idempotent too (a rebuild into the same tables):
    # the last batch applied again, at the same time, adds no fact and no event.
    async with engine.begin() as conn:
        await runner.projection.apply_many(conn, batches[-1])
    assert await snapshot(engine) == before
    assert before["churn_facts"] and before["events"]
