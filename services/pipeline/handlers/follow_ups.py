"""Follow-up tasks the alerts service asks for: ``FollowUpTaskRequested`` on
``crm.alerts.events`` becomes a task for the customer's owner, under the task id the
request carries (docs/decisions/0032, 0045).

A projection of the alerts topic, so the task, its outbox row and the runtime's
record of the applied event commit in one transaction. The task id is derived from
the alert: a redelivery (or a rebuild from the earliest offset) finds the task's
stream there and changes nothing, even if the task has been completed meanwhile.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from sqlalchemy.ext.asyncio import AsyncConnection

from libs.events.catalog import EventCatalog
from libs.events.catalog.alerts import FollowUpTaskRequested
from libs.events.consumer import ReceivedEvent
from libs.events.kafka import service_topic
from libs.events.projection import Projection
from libs.events.store import NewEvent
from services.pipeline.commands import CreateTask
from services.pipeline.domain import tasks
from services.pipeline.handlers import Pipeline, read_events
from services.pipeline.read_model import task_list
from services.pipeline.read_model.known_customers import KnownCustomers

# What the pipeline reads from the alerts topic (every other type is skipped, counted).
ALERTS_SOURCES = EventCatalog(
    [FollowUpTaskRequested], schema_base_url="https://schemas.crm.example/events"
)
# A customer without an owner: the task goes to the pool everyone's lists can filter on.
UNASSIGNED = "unassigned"
# Who the task says created it (``created_by``): the alerts service, not a person.
CREATED_BY = "alerts"


class FollowUpRequests(Projection):
    """Creates the follow-up task each request names, once."""

    name: ClassVar[str] = "pipeline_follow_ups"

    def __init__(self, pipeline: Pipeline, customers: KnownCustomers, generation: int = 1) -> None:
        super().__init__(generation)
        self.pipeline = pipeline
        self.customers = customers
        self.topics = [service_topic("alerts")]
        self.created = 0

    async def apply(self, conn: AsyncConnection, event: ReceivedEvent) -> None:
        if isinstance(event.event, FollowUpTaskRequested):
            await self.create(conn, event.envelope.tenantid, event.event, event)

    async def create(
        self,
        conn: AsyncConnection,
        tenant_id: str,
        request: FollowUpTaskRequested,
        received: ReceivedEvent,
    ) -> bool:
        """The task the request names; False when it exists already (a redelivery)."""
        if await read_events(self.pipeline, conn, tenant_id, request.task_id):
            return False
        # A customer merged since the alert: the task belongs with the survivor. One
        # the pipeline has not heard of yet is taken as alerts names it (alerts only
        # knows customers contacts registered).
        customer_id = (
            await self.customers.resolve(conn, tenant_id, request.customer_id)
            or request.customer_id
        )
        command = CreateTask(
            task_id=request.task_id,
            customer_id=customer_id,
            title=request.title,
            due_at=request.due_at,
            assignee_id=request.owner_id or UNASSIGNED,
            created_by=CREATED_BY,
        )
        # Decided as of when alerts asked, so a request replayed long after (a rebuild)
        # is not refused as backdated.
        requested_at = received.envelope.time
        events = tasks.decide(None, command, requested_at)
        task = tasks.fold(events)
        assert task is not None
        await self.pipeline.store.append(
            tenant_id,
            request.task_id,
            0,
            [
                NewEvent.from_domain(
                    e,
                    partition_key=customer_id,
                    occurred_at=self.pipeline.clock(),
                    correlation_id=received.envelope.correlationid,
                    causation_id=received.envelope.id,
                )
                for e in events
            ],
            conn=conn,
        )
        await task_list.save_task(conn, tenant_id, task)
        self.created += len(events)
        return True

    async def apply_many(self, conn: AsyncConnection, events: Sequence[ReceivedEvent]) -> None:
        self.created = 0
        for event in events:
            await self.apply(conn, event)
        # Counted and the relay woken as the batch ends (it commits right after this;
        # the relay polls as well, so waking a moment early loses nothing).
        self.pipeline.appended(self.created)
