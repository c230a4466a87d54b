"""A tiny published language for the platform's own tests: counters per customer."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Column, Integer, String, Table, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from libs.events.catalog import DomainEvent, EventCatalog
from libs.events.consumer import ReceivedEvent
from libs.events.projection import Projection
from libs.events.store import NewEvent

T0 = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)


class VisitLogged(DomainEvent, type_name="crm.sample.visit_logged.v2"):
    customer_id: str
    minutes: int
    note: str = ""


class VisitLoggedV1(DomainEvent, type_name="crm.sample.visit_logged.v1"):
    customer_id: str
    duration: int


class PoisonPill(DomainEvent, type_name="crm.sample.poison_pill.v1"):
    customer_id: str


catalog = EventCatalog([VisitLogged, PoisonPill], schema_base_url="https://schemas.example/crm")


@catalog.upcaster("crm.sample.visit_logged.v1", "crm.sample.visit_logged.v2")
def _minutes_replace_duration(data: dict[str, object]) -> dict[str, object]:
    data = dict(data)
    data["minutes"] = data.pop("duration")
    return data


def visit(customer_id: str, minutes: int = 1, note: str = "x" * 200) -> NewEvent:
    return NewEvent.from_domain(
        VisitLogged(customer_id=customer_id, minutes=minutes, note=note),
        partition_key=customer_id,
        occurred_at=T0,
    )


class VisitTotals(Projection):
    """Minutes of visits per customer: a read model whose double counting would show."""

    name = "visit_totals"
    topics: tuple[str, ...] = ()

    def __init__(self, generation: int = 1, topics: tuple[str, ...] = ()) -> None:
        super().__init__(generation)
        self.topics = topics or type(self).topics
        self.totals = Table(
            self.table_name("totals"),
            self.metadata,
            Column("customer_id", String(64), primary_key=True),
            Column("minutes", Integer, nullable=False),
            Column("visits", Integer, nullable=False),
        )

    async def apply(self, conn: AsyncConnection, event: ReceivedEvent) -> None:
        if isinstance(event.event, PoisonPill):
            raise RuntimeError("this event cannot be applied")
        assert isinstance(event.event, VisitLogged)
        e = event.event
        changed = await conn.execute(
            update(self.totals)
            .where(self.totals.c.customer_id == e.customer_id)
            .values(minutes=self.totals.c.minutes + e.minutes, visits=self.totals.c.visits + 1)
        )
        if changed.rowcount == 0:
            await conn.execute(
                self.totals.insert().values(customer_id=e.customer_id, minutes=e.minutes, visits=1)
            )

    async def snapshot(self, conn: AsyncConnection) -> dict[str, tuple[int, int]]:
        rows = await conn.execute(select(self.totals).order_by(self.totals.c.customer_id))
        return {r.customer_id: (r.minutes, r.visits) for r in rows}

    async def count_for_rebuild(self, conn: AsyncConnection) -> int:
        return int(await conn.scalar(select(func.count()).select_from(self.totals)) or 0)
