"""Reading the 360 view: what a client gets, how fresh it is, and read-your-writes.

A read follows the active generation, resolves a merged duplicate to its survivor
and joins the history of the survivor and its duplicates. ``?min_version`` re-reads
the customer's row when a commit names it (``applied.py``), or polls where nothing is
heard (decision 4; and why 504 when the version is not reached).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from libs.events.projection import generations
from libs.platform.db import is_postgres, snapshot_reads
from services.customer360.domain.sources import SOURCES
from services.customer360.domain.view import (
    RECENT_INTERACTIONS,
    CustomerView,
    Interaction,
    Source,
    empty_service,
)
from services.customer360.read_model.answer import (
    AlertItem,
    BrokerPosition,
    ChurnRiskSection,
    ConsentDecision,
    ContractItem,
    Customer360,
    CustomerProfile,
    DealItem,
    Freshness,
    InteractionItem,
    LoyaltyAccount,
    OrderItem,
    ProjectionLag,
    PurchaseFigures,
    ServiceFigures,
    TaskItem,
    TicketItem,
    TimelineItem,
)
from services.customer360.read_model.applied import AppliedSignal
from services.customer360.read_model.writer import Customer360Projection

if TYPE_CHECKING:
    from services.customer360.handlers import LagMonitor

# Imported by name from here (the API, the lag monitor).
__all__ = ["Customer360", "Customer360Reader", "ProjectionLag", "VersionWait"]

log = logging.getLogger(__name__)

FIRST_POLL_SECONDS = 0.005
MAX_POLL_SECONDS = 0.02
# While notified of commits: how often a waiting read looks anyway.
SAFETY_SECONDS = 0.5


@dataclass(frozen=True, slots=True)
class VersionWait:
    reached: bool
    # The customer's version when the wait ended (None: the customer is not there yet).
    version: int | None
    waited_seconds: float


# --- the reader ----------------------------------------------------------------------


class Customer360Reader:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        sources: Sequence[Source] = SOURCES,
        generation_check_seconds: float = 1.0,
        safety_seconds: float = SAFETY_SECONDS,
    ) -> None:
        self.engine = engine
        # Reads never wait behind the projector's batches for SQLite's write lock.
        self._reads = snapshot_reads(engine)
        self.sources = tuple(sources)
        self.generation_check_seconds = generation_check_seconds
        self.lag_monitor: LagMonitor | None = None
        # Heard from the projector's commits (PostgreSQL); until then, reads poll.
        self.signal = AppliedSignal()
        self.safety_seconds = safety_seconds
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
            async with self._reads.connect() as conn:
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
        async with self._reads.connect() as conn:
            return await projection.queries.version_of(conn, tenant_id, customer_id)

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
        customer = (tenant_id, customer_id)
        woken = self.signal.register(customer)
        try:
            while True:
                woken.clear()  # before reading: a batch committed after the read wakes us
                version = await self.version_of(tenant_id, customer_id)
                now = loop.time()
                if version is not None and version >= min_version:
                    return VersionWait(True, version, now - started)
                if now >= deadline:
                    return VersionWait(False, version, now - started)
                if self.signal.listening:
                    # Woken when a batch naming this customer commits; read again
                    # now and then anyway, should a notification have been missed.
                    with suppress(TimeoutError):
                        await asyncio.wait_for(
                            woken.wait(), timeout=min(self.safety_seconds, deadline - now)
                        )
                    continue
                await asyncio.sleep(min(delay, deadline - now))
                delay = min(delay * 2, MAX_POLL_SECONDS)
        finally:
            self.signal.unregister(customer, woken)

    async def view(self, tenant_id: str, customer_id: str) -> Customer360 | None:
        """The 360 view of ``customer_id`` in ``tenant_id``; None when there is none.

        Another tenant's customer is simply not found: every query names the tenant.
        """
        projection = await self.projection()
        if self._one_statement is not None:
            # The usual read, a customer never merged: one statement, so no transaction.
            async with self._one_statement.connect() as conn:
                found = await projection.queries.load_for_reading(conn, tenant_id, customer_id)
            if found is not None:
                view, survivor_id, timeline = found
                if survivor_id is None and not view.absorbed and view.profile.kind is not None:
                    return self._assemble(
                        projection.generation, view, customer_id, [customer_id], timeline, {}
                    )
        # Merged, absorbing, unknown, or SQLite: several statements in one snapshot.
        async with self._reads.connect() as conn:
            loaded, survivor_id = await projection.queries.load_with_survivor(
                conn, tenant_id, customer_id
            )
            served_id = customer_id
            if survivor_id is not None:
                further = await projection.queries.survivors_of(conn, tenant_id, survivor_id)
                served_id = further[-1] if further else survivor_id
                loaded = await projection.queries.load(conn, tenant_id, served_id)
            if loaded is None or loaded.profile.kind is None:
                # Only what the contacts service registered is a customer; events of
                # other services about an unknown id wait for it.
                return None
            # Never merged (the usual case): no need to look for duplicates.
            group = (
                await projection.queries.group_of(conn, tenant_id, served_id)
                if loaded.absorbed
                else [served_id]
            )
            timeline = await projection.queries.timeline_of(conn, tenant_id, group)
            others = (
                await projection.queries.interactions_of(conn, tenant_id, group[1:])
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
        profile = _profile(view)
        interactions = _recent_interactions({served_id: view.recent_interactions, **others})
        lag = self._lag(generation)
        sections = view.sections
        return Customer360(
            customer_id=served_id,
            requested_id=requested_id,
            merged_ids=group[1:],
            erased=view.erased,
            erased_at=view.erased_at,
            profile=profile,
            tags=list(view.tags),
            owner_id=view.owner_id,
            key_contacts=dict(view.key_contacts),
            consent=_consent(view),
            interaction_count=view.interaction_count,
            last_interaction_at=view.last_interaction_at,
            last_interaction=interactions[0] if interactions else None,
            recent_interactions=interactions,
            timeline=_timeline(timeline),
            deals=_listed(DealItem, sections, "deals"),
            orders=_listed(OrderItem, sections, "orders"),
            purchases=_purchases(sections),
            contracts=_listed(ContractItem, sections, "contracts"),
            tasks=_listed(TaskItem, sections, "tasks"),
            tickets=_listed(TicketItem, sections, "tickets"),
            service=ServiceFigures.model_validate(sections.get("service") or empty_service()),
            loyalty=_optional(LoyaltyAccount, sections, "loyalty"),
            churn_risk=_optional(ChurnRiskSection, sections, "churn_risk"),
            alerts=_listed(AlertItem, sections, "alerts"),
            freshness=_freshness(view, lag),
        )

    def _lag(self, generation: int) -> ProjectionLag:
        """How far behind the projection ``generation`` is (unknown with no monitor)."""
        if self.lag_monitor is not None:
            return self.lag_monitor.lag(generation)
        return ProjectionLag(
            generation=generation,
            lag_events=None,
            lag_seconds=None,
            measured_at=None,
        )


# --- the 360's sections --------------------------------------------------------------

Item = TypeVar("Item", bound=BaseModel)


def _profile(view: CustomerView) -> CustomerProfile:
    """Who the customer is, as the contacts service registered and changed it."""
    profile = view.profile
    kind = profile.kind
    assert kind is not None  # only registered customers are served
    return CustomerProfile(
        kind=kind,
        name=profile.name,
        email=profile.email,
        phone=profile.phone,
        birthday=profile.birthday,
        company_id=profile.company_id,
        attributes=dict(profile.attributes),
        registered_at=profile.registered_at,
    )


def _consent(view: CustomerView) -> dict[str, ConsentDecision]:
    """The latest decision per channel, channels in order."""
    return {
        channel: ConsentDecision(granted=c.granted, source=c.source, at=c.at)
        for channel, c in sorted(view.consents.items())
    }


def _timeline(rows: list[dict[str, Any]]) -> list[TimelineItem]:
    return [
        TimelineItem(
            event_id=r["event_id"],
            type=r["type"],
            time=r["occurred_at"],
            summary=r["summary"],
            facts=r.get("facts"),
            customer_id=r["customer_id"],
        )
        for r in rows
    ]


def _listed(model: type[Item], sections: Mapping[str, Any], name: str) -> list[Item]:
    """A list section (deals, orders, contracts, tasks, tickets, alerts); empty if none."""
    return [model.model_validate(item) for item in sections.get(name) or []]


def _optional(model: type[Item], sections: Mapping[str, Any], name: str) -> Item | None:
    """A section there once its service has said something (loyalty, churn risk)."""
    return model.model_validate(sections[name]) if sections.get(name) else None


def _purchases(sections: Mapping[str, Any]) -> list[PurchaseFigures]:
    """Purchase figures, one per currency, currencies in order."""
    return [
        PurchaseFigures.model_validate({"currency": currency, **figures})
        for currency, figures in sorted((sections.get("purchases") or {}).items())
    ]


def _freshness(view: CustomerView, lag: ProjectionLag) -> Freshness:
    """The view's version, when and up to where it was applied, and the projection's lag."""
    return Freshness(
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
