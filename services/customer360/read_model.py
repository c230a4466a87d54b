"""Reading the 360 view: what a client gets, how fresh it is, and read-your-writes.

A read follows the active generation (so a rebuild's swap shows up within
``generation_check_seconds``), resolves a merged duplicate to its survivor, and
joins the timeline and interactions of the survivor and its duplicates.

Read-your-writes: a client that wrote version N of a customer asks for the view
"at least at N"; :meth:`Customer360Reader.wait_for_version` polls the customer's
row (a primary-key read) until it is there or the wait is over. Polling, rather
than a notification from the projector, works when readers and projector are
different processes, and on SQLite as on PostgreSQL; the interval starts at
5 ms and stays at most 20 ms, which is below the projector's own batch latency.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from libs.events import metrics
from libs.events.db import is_postgres
from libs.events.kafka import KafkaSettings
from libs.events.projection import ProjectionStatus, generations, projection_status
from services.customer360.projection import Customer360Projection
from services.customer360.sources import SOURCES
from services.customer360.view import RECENT_INTERACTIONS, CustomerView, Interaction, Source

log = logging.getLogger(__name__)

FIRST_POLL_SECONDS = 0.005
MAX_POLL_SECONDS = 0.02


# --- what a client gets -----------------------------------------------------------------


class CustomerProfile(BaseModel):
    kind: str
    name: str
    email: str | None
    phone: str | None
    birthday: date | None
    company_id: str | None
    attributes: dict[str, str | int | float]
    registered_at: datetime | None


class ConsentDecision(BaseModel):
    granted: bool
    source: str
    at: datetime


class InteractionItem(BaseModel):
    interaction_id: str
    # The customer whose record logged it (a duplicate's id after a merge).
    customer_id: str
    channel: str
    direction: str
    summary: str
    by: str
    occurred_at: datetime


class TimelineItem(BaseModel):
    event_id: str
    type: str
    time: datetime
    summary: str
    # The customer whose history it comes from (a duplicate's id after a merge).
    customer_id: str


class BrokerPosition(BaseModel):
    topic: str
    partition: int
    offset: int


class ProjectionLag(BaseModel):
    generation: int
    # None until the first measurement (the broker is asked every few seconds).
    lag_events: int | None
    lag_seconds: float | None
    # True while the projection is not following its topics (then the view may be old).
    stalled: bool | None = None
    measured_at: datetime | None


class Freshness(BaseModel):
    # The customer's stream version this view includes (compare with ?min_version).
    version: int
    # Time of the newest event applied to this customer.
    updated_at: datetime | None
    # Where that event was read: the projector's position for this customer.
    position: BrokerPosition | None
    projection: ProjectionLag


class Customer360(BaseModel):
    customer_id: str
    # The id asked for: a merged duplicate's id is answered with its survivor's view.
    requested_id: str
    merged_ids: list[str]
    erased: bool
    erased_at: datetime | None
    profile: CustomerProfile
    tags: list[str]
    owner_id: str | None
    key_contacts: dict[str, str]
    consent: dict[str, ConsentDecision]
    interaction_count: int
    last_interaction_at: datetime | None
    last_interaction: InteractionItem | None
    recent_interactions: list[InteractionItem]
    timeline: list[TimelineItem]
    # Filled by later services; present and empty until then.
    deals: list[Any]
    orders: list[Any]
    tickets: list[Any]
    loyalty: dict[str, Any] | None
    alerts: list[Any]
    freshness: Freshness


@dataclass(frozen=True, slots=True)
class VersionWait:
    reached: bool
    # The customer's version when the wait ended (None: the customer is not there yet).
    version: int | None
    waited_seconds: float


# --- lag -----------------------------------------------------------------------------


class LagMonitor:
    """Measures the projection's lag every few seconds, for every view to quote."""

    def __init__(
        self,
        engine: AsyncEngine,
        kafka: KafkaSettings,
        reader: Customer360Reader,
        *,
        refresh_seconds: float = 2.0,
    ) -> None:
        self.engine = engine
        self.kafka = kafka
        self.reader = reader
        self.refresh_seconds = refresh_seconds
        self.latest: ProjectionStatus | None = None
        self.measured_at: datetime | None = None

    async def measure(self) -> ProjectionStatus:
        projection = await self.reader.projection()
        status = await projection_status(self.engine, self.kafka, projection)
        self.latest, self.measured_at = status, datetime.now(UTC)
        metrics.PROJECTION_STALLED.labels(projection.name).set(1 if status.stalled else 0)
        return status

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await asyncio.wait_for(self.measure(), timeout=max(self.refresh_seconds, 5.0))
            except Exception as exc:
                # The view stays readable while the broker is away; its lag goes stale.
                log.warning("customer360: lag not measured: %s", exc)
            try:
                await asyncio.wait_for(stop.wait(), timeout=self.refresh_seconds)
            except TimeoutError:
                pass

    def lag(self, generation: int) -> ProjectionLag:
        status = self.latest
        if status is None or status.generation != generation:
            return ProjectionLag(
                generation=generation, lag_events=None, lag_seconds=None, measured_at=None
            )
        return ProjectionLag(
            generation=generation,
            lag_events=status.lag_events,
            lag_seconds=round(status.lag_seconds, 3),
            stalled=status.stalled,
            measured_at=self.measured_at,
        )


# --- the reader ----------------------------------------------------------------------


class Customer360Reader:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        sources: Sequence[Source] = SOURCES,
        generation_check_seconds: float = 1.0,
    ) -> None:
        self.engine = engine
        self.sources = tuple(sources)
        self.generation_check_seconds = generation_check_seconds
        self.lag_monitor: LagMonitor | None = None
        self._projection = Customer360Projection(1, self.sources)
        self._checked_at: float | None = None
        # Where one statement reads a whole view (PostgreSQL), it needs no transaction.
        self._one_statement = (
            engine.execution_options(isolation_level="AUTOCOMMIT") if is_postgres(engine) else None
        )

    async def projection(self) -> Customer360Projection:
        """The active generation, looked up at most once per ``generation_check_seconds``."""
        now = asyncio.get_running_loop().time()
        if self._checked_at is None or now - self._checked_at >= self.generation_check_seconds:
            async with self.engine.connect() as conn:
                active = await conn.scalar(
                    select(generations.c.active).where(
                        generations.c.projection == Customer360Projection.name
                    )
                )
            generation = int(active) if active is not None else 1
            if generation != self._projection.generation:
                self._projection = Customer360Projection(generation, self.sources)
            self._checked_at = now
        return self._projection

    async def version_of(self, tenant_id: str, customer_id: str) -> int | None:
        projection = await self.projection()
        async with self.engine.connect() as conn:
            return await projection.version_of(conn, tenant_id, customer_id)

    async def wait_for_version(
        self, tenant_id: str, customer_id: str, min_version: int, *, timeout: float
    ) -> VersionWait:
        """Wait until ``customer_id``'s own stream is applied up to ``min_version``.

        The id asked for is the one compared, also for a merged duplicate: it is
        the stream the client wrote to and whose version it was told.
        """
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + timeout
        delay = FIRST_POLL_SECONDS
        while True:
            version = await self.version_of(tenant_id, customer_id)
            now = loop.time()
            if version is not None and version >= min_version:
                return VersionWait(True, version, now - started)
            if now >= deadline:
                return VersionWait(False, version, now - started)
            await asyncio.sleep(min(delay, deadline - now))
            delay = min(delay * 2, MAX_POLL_SECONDS)

    async def view(self, tenant_id: str, customer_id: str) -> Customer360 | None:
        """The 360 view of ``customer_id`` in ``tenant_id``; None when there is none.

        Another tenant's customer is simply not found: every query names the tenant.
        """
        projection = await self.projection()
        if self._one_statement is not None:
            # The usual read, a customer never merged: one statement, so no transaction.
            async with self._one_statement.connect() as conn:
                found = await projection.load_for_reading(conn, tenant_id, customer_id)
            if found is not None:
                view, survivor_id, timeline = found
                if survivor_id is None and not view.absorbed and view.profile.kind is not None:
                    return self._assemble(
                        projection.generation, view, customer_id, [customer_id], timeline, {}
                    )
        # Merged, absorbing, unknown, or SQLite: several statements in one snapshot.
        async with self.engine.connect() as conn:
            loaded, survivor_id = await projection.load_with_survivor(conn, tenant_id, customer_id)
            served_id = customer_id
            if survivor_id is not None:
                further = await projection.survivors_of(conn, tenant_id, survivor_id)
                served_id = further[-1] if further else survivor_id
                loaded = await projection.load(conn, tenant_id, served_id)
            if loaded is None or loaded.profile.kind is None:
                # Only what the contacts service registered is a customer; events of
                # other services about an unknown id wait for it.
                return None
            # Never merged (the usual case): no need to look for duplicates.
            group = (
                await projection.group_of(conn, tenant_id, served_id)
                if loaded.absorbed
                else [served_id]
            )
            timeline = await projection.timeline_of(conn, tenant_id, group)
            others = (
                await projection.interactions_of(conn, tenant_id, group[1:])
                if len(group) > 1
                else {}
            )
        return self._assemble(projection.generation, loaded, customer_id, group, timeline, others)

    def _assemble(
        self,
        generation: int,
        view: CustomerView,
        requested_id: str,
        group: list[str],
        timeline: list[dict[str, Any]],
        others: Mapping[str, Sequence[Interaction]],
    ) -> Customer360:
        """The answer for ``view`` (read from ``generation``), served for ``requested_id``;
        ``group`` starts with the customer served, then the duplicates merged into it."""
        served_id = group[0]
        kind = view.profile.kind
        assert kind is not None  # only registered customers are served
        interactions = _recent_interactions({served_id: view.recent_interactions, **others})
        lag = (
            self.lag_monitor.lag(generation)
            if self.lag_monitor is not None
            else ProjectionLag(
                generation=generation,
                lag_events=None,
                lag_seconds=None,
                measured_at=None,
            )
        )
        profile = view.profile
        sections = view.sections
        return Customer360(
            customer_id=served_id,
            requested_id=requested_id,
            merged_ids=group[1:],
            erased=view.erased,
            erased_at=view.erased_at,
            profile=CustomerProfile(
                kind=kind,
                name=profile.name,
                email=profile.email,
                phone=profile.phone,
                birthday=profile.birthday,
                company_id=profile.company_id,
                attributes=dict(profile.attributes),
                registered_at=profile.registered_at,
            ),
            tags=list(view.tags),
            owner_id=view.owner_id,
            key_contacts=dict(view.key_contacts),
            consent={
                channel: ConsentDecision(granted=c.granted, source=c.source, at=c.at)
                for channel, c in sorted(view.consents.items())
            },
            interaction_count=view.interaction_count,
            last_interaction_at=view.last_interaction_at,
            last_interaction=interactions[0] if interactions else None,
            recent_interactions=interactions,
            timeline=[
                TimelineItem(
                    event_id=r["event_id"],
                    type=r["type"],
                    time=r["occurred_at"],
                    summary=r["summary"],
                    customer_id=r["customer_id"],
                )
                for r in timeline
            ],
            deals=list(sections.get("deals") or []),
            orders=list(sections.get("orders") or []),
            tickets=list(sections.get("tickets") or []),
            loyalty=sections.get("loyalty"),
            alerts=list(sections.get("alerts") or []),
            freshness=Freshness(
                version=view.version,
                updated_at=view.updated_at,
                position=BrokerPosition(
                    topic=view.position.topic,
                    partition=view.position.partition,
                    offset=view.position.offset,
                )
                if view.position
                else None,
                projection=lag,
            ),
        )


def _recent_interactions(
    by_customer: Mapping[str, Sequence[Interaction]],
) -> list[InteractionItem]:
    """The most recent interactions across a survivor and its duplicates."""
    items = [
        InteractionItem(
            interaction_id=i.interaction_id,
            customer_id=customer_id,
            channel=i.channel,
            direction=i.direction,
            summary=i.summary,
            by=i.by,
            occurred_at=i.occurred_at,
        )
        for customer_id, interactions in by_customer.items()
        for i in interactions
    ]
    items.sort(key=lambda i: (i.occurred_at, i.interaction_id), reverse=True)
    return items[:RECENT_INTERACTIONS]


async def status_of(
    engine: AsyncEngine, kafka: KafkaSettings, reader: Customer360Reader
) -> ProjectionStatus:
    """The projection's lag, measured now (for ops; views quote the monitor's)."""
    return await projection_status(engine, kafka, await reader.projection())
