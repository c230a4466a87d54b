"""Every service's ops endpoint, in one shape (docs/decisions/0075).

``GET /api/v1/ops/<service>`` (``ops:read``): the outbox backlog (events stored but
not yet published, and the age of the oldest), and per projection the service runs its
lag, its dead letters per consumer and source topic, and the rebuild in progress.
``POST /api/v1/ops/<service>/projections/<name>/rebuilds`` (``ops:rebuild``) starts a
rebuild as a job (``libs.events.rebuilds``), followed at its ``Location``.

A service builds an :class:`OpsBoard` in its lifespan (what it publishes, what it
projects), puts it on ``app.state.ops`` and mounts :func:`ops_router`; its declaration
adds :func:`libs.platform.service.ops_route` so the gateway relays the paths.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request, Response
from pydantic import BaseModel
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from libs.auth import Principal, require
from libs.events.kafka import KafkaSettings, dlq_topic
from libs.events.lag import MeasuredProjection, ProjectionStatus, end_offsets, projection_status
from libs.events.outbox import OutboxBacklog, outbox_backlog
from libs.events.projection import LiveProjection, ProjectionRunner
from libs.events.rebuilds import RebuildAlreadyRunning, RebuildJob, Rebuilds
from libs.platform.errors import Conflict, DomainError, NotFound
from libs.platform.routing import ServiceRouter

# A broker that does not answer must not hold the page: its figures are left out.
MEASURE_TIMEOUT_SECONDS = 10.0


# --- what a service watches ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WatchedProjection:
    """One projection a service runs: how to find its serving generation, and its
    rebuilds (None: not rebuildable, see :meth:`fixed`)."""

    name: str
    engine: AsyncEngine
    current: Callable[[], Awaitable[MeasuredProjection]]
    rebuilds: Rebuilds | None

    @classmethod
    def live(cls, live: LiveProjection) -> WatchedProjection:
        """A projection served by generation: a rebuild fills the next one and swaps it in."""
        rebuilds = Rebuilds(live.name, live.factory, live.engine, live.kafka, live.catalog)
        return cls(live.name, live.engine, live.current, rebuilds)

    @classmethod
    def fixed(cls, runner: ProjectionRunner) -> WatchedProjection:
        """A consumer with one fixed generation (reactions that append events or send
        messages): a new generation would act on every event again, so it is watched only."""

        async def current() -> MeasuredProjection:
            return runner.projection

        return cls(runner.projection.name, runner.engine, current, None)


class OpsBoard:
    """What one service reports to ops: its outbox (None: it writes no events) and the
    projections it runs."""

    def __init__(
        self,
        service: str,
        kafka: KafkaSettings,
        *,
        outbox: AsyncEngine | None = None,
        projections: Sequence[WatchedProjection] = (),
    ) -> None:
        self.service = service
        self.kafka = kafka
        self.outbox = outbox
        self.projections = {p.name: p for p in projections}

    def rebuilds_of(self, name: str) -> Rebuilds:
        watched = self.projections.get(name)
        if watched is None:
            raise UnknownProjection(self.service, name)
        if watched.rebuilds is None:
            raise NotRebuildable(name)
        return watched.rebuilds

    async def stop(self) -> None:
        """Cancel running rebuilds (on shutdown): the active generations keep serving."""
        for watched in self.projections.values():
            if watched.rebuilds is not None:
                await watched.rebuilds.stop()

    async def report(self) -> ServiceOps:
        backlog = await self._backlog()
        projections = list(self.projections.values())
        serving = [await p.current() for p in projections]
        lagging = asyncio.gather(
            *(self._lag(p, s) for p, s in zip(projections, serving, strict=True))
        )
        lags, held = await asyncio.gather(lagging, self._dead_letters(serving))
        return ServiceOps(
            service=self.service,
            outbox=backlog,
            projections=[
                _projection_report(p, s, lag, held)
                for p, s, lag in zip(projections, serving, lags, strict=True)
            ],
        )

    async def _backlog(self) -> Backlog | None:
        if self.outbox is None:
            return None
        try:
            async with self.outbox.connect() as conn:
                measured: OutboxBacklog = await outbox_backlog(conn)
        except (SQLAlchemyError, OSError) as exc:
            raise OpsUnavailable(f"database unreachable ({type(exc).__name__})") from exc
        return Backlog(
            events=measured.events,
            oldest_enqueued_at=measured.oldest_enqueued_at,
            oldest_age_seconds=round(measured.oldest_age_seconds, 3),
        )

    async def _lag(
        self, watched: WatchedProjection, serving: MeasuredProjection
    ) -> ProjectionStatus | str:
        """The lag, or why it was not measured."""
        try:
            return await asyncio.wait_for(
                projection_status(watched.engine, self.kafka, serving),
                timeout=MEASURE_TIMEOUT_SECONDS,
            )
        except Exception as exc:  # the broker's failures are many; the page names them
            return f"broker unreachable ({type(exc).__name__})"

    async def _dead_letters(self, serving: Sequence[MeasuredProjection]) -> dict[str, int] | str:
        """Messages held per DLQ topic, or why they were not counted."""
        topics = sorted({dlq_topic(t) for p in serving for t in p.topics})
        if not topics:
            return {}
        try:
            ends = await asyncio.wait_for(
                end_offsets(self.kafka, topics), timeout=MEASURE_TIMEOUT_SECONDS
            )
        except Exception as exc:
            return f"broker unreachable ({type(exc).__name__})"
        held: dict[str, int] = {}
        for tp, end in ends.items():
            held[tp.topic] = held.get(tp.topic, 0) + end
        return held


def _projection_report(
    watched: WatchedProjection,
    serving: MeasuredProjection,
    lag: ProjectionStatus | str,
    held: dict[str, int] | str,
) -> ProjectionOps:
    latest = watched.rebuilds.latest if watched.rebuilds is not None else None
    unmeasured = [reason for reason in (lag, held) if isinstance(reason, str)]
    return ProjectionOps(
        name=watched.name,
        generation=serving.generation,
        lag_events=lag.lag_events if isinstance(lag, ProjectionStatus) else None,
        lag_seconds=round(lag.lag_seconds, 3) if isinstance(lag, ProjectionStatus) else None,
        stalled=lag.stalled if isinstance(lag, ProjectionStatus) else None,
        unmeasured=unmeasured[0] if unmeasured else None,
        dead_letters=[
            DeadLetters(
                consumer=serving.key,
                topic=topic,
                dlq_topic=dlq_topic(topic),
                messages=held.get(dlq_topic(topic), 0) if isinstance(held, dict) else None,
            )
            for topic in serving.topics
        ],
        rebuildable=watched.rebuilds is not None,
        rebuild=rebuild_report(latest) if latest is not None else None,
    )


# --- the shape every service answers -------------------------------------------------


class Backlog(BaseModel):
    # Events stored but not yet published to the service's topic.
    events: int
    oldest_enqueued_at: datetime | None
    # How long the oldest of them has waited (0 when none waits).
    oldest_age_seconds: float


class DeadLetters(BaseModel):
    # The consumer group whose dead letters these are (the projection's generation).
    consumer: str
    topic: str
    dlq_topic: str
    # Messages held by the DLQ topic (its partitions' ends; DLQ topics are never
    # compacted). A topic's DLQ is shared by the groups reading it (each message names
    # its group in a ``dlq_group`` header). Null: the broker did not answer.
    messages: int | None


class RebuildReport(BaseModel):
    id: str
    projection: str
    # running, activated (the new generation serves), refused (its checks failed: the
    # old generation still serves, see reasons) or failed.
    state: str
    started_at: str
    finished_at: str | None
    generation: int | None
    # Messages read, of those on the topics when the rebuild started.
    read: int
    target: int | None
    dead_lettered: int
    reasons: list[str]


class ProjectionOps(BaseModel):
    name: str
    # The generation serving reads.
    generation: int
    # Null when the broker did not answer (``unmeasured`` says why).
    lag_events: int | None
    lag_seconds: float | None
    stalled: bool | None
    unmeasured: str | None
    dead_letters: list[DeadLetters]
    # Whether POST .../projections/{name}/rebuilds may start one.
    rebuildable: bool
    # The last rebuild started over HTTP by this process (null: none since it started).
    rebuild: RebuildReport | None


class ServiceOps(BaseModel):
    service: str
    # Null: the service writes no events (it has no outbox).
    outbox: Backlog | None
    projections: list[ProjectionOps]


def rebuild_report(job: RebuildJob) -> RebuildReport:
    return RebuildReport(**job.as_dict())


# --- errors --------------------------------------------------------------------------


class OpsUnavailable(DomainError):
    status_code = 503

    def __init__(self, reason: str) -> None:
        super().__init__(f"ops figures unavailable: {reason}", headers={"Retry-After": "5"})


class UnknownProjection(NotFound):
    def __init__(self, service: str, name: str) -> None:
        super().__init__(f"{service} runs no projection named {name}", projection=name)


class NotRebuildable(Conflict):
    def __init__(self, name: str) -> None:
        super().__init__(
            f"{name} reacts to events by writing events or sending messages: a rebuild would "
            "act on every event again, so it is not rebuilt",
            code="not_rebuildable",
            projection=name,
        )


class RebuildRunning(Conflict):
    def __init__(self, running: RebuildAlreadyRunning) -> None:
        super().__init__(str(running), code="rebuild_running", rebuild_id=running.running.id)


class RebuildNotFound(NotFound):
    def __init__(self, rebuild_id: str) -> None:
        super().__init__(f"rebuild {rebuild_id} not found", rebuild_id=rebuild_id)


# --- HTTP ----------------------------------------------------------------------------

FORBIDDEN: dict[int | str, dict[str, Any]] = {
    403: {"description": "The caller's roles do not grant the permission"}
}
UNAVAILABLE: dict[int | str, dict[str, Any]] = {
    503: {"description": "The service is starting or its database did not answer; Retry-After"}
}


async def board_of(request: Request) -> OpsBoard:
    board: OpsBoard | None = getattr(request.app.state, "ops", None)
    if board is None:
        raise OpsUnavailable("the service is starting")
    return board


Board = Annotated[OpsBoard, Depends(board_of)]
Name = Annotated[str, Path(max_length=100, description="A projection the service runs")]


def start_rebuild(board: OpsBoard, name: str) -> RebuildJob:
    """Start a rebuild of ``name``, or raise what the caller is told (404, 409)."""
    try:
        return board.rebuilds_of(name).start()
    except RebuildAlreadyRunning as running:
        raise RebuildRunning(running) from None


def ops_router(service: str) -> APIRouter:
    """``/api/v1/ops/<service>``: the report, and rebuilds of its projections."""
    prefix = f"/api/v1/ops/{service}"
    router = ServiceRouter(prefix=prefix, tags=["ops"])

    @router.get("", response_model=ServiceOps, responses={**FORBIDDEN, **UNAVAILABLE})
    async def ops_report(
        principal: Annotated[Principal, Depends(require("ops:read"))], board: Board
    ) -> ServiceOps:
        """Outbox backlog, and per projection its lag, dead letters and rebuild.

        Counts only, no tenant's data. A broker that does not answer leaves the lag and
        dead-letter figures null (``unmeasured`` says why); the outbox is still counted."""
        return await board.report()

    @router.post(
        "/projections/{name}/rebuilds",
        status_code=202,
        response_model=RebuildReport,
        responses={
            **FORBIDDEN,
            404: {"description": "The service runs no projection of that name"},
            409: {
                "description": "A rebuild of it is running (code rebuild_running, rebuild_id), "
                "or it is not rebuildable (code not_rebuildable)"
            },
            **UNAVAILABLE,
        },
    )
    async def rebuild_projection(
        name: Name,
        response: Response,
        principal: Annotated[Principal, Depends(require("ops:rebuild"))],
        board: Board,
    ) -> RebuildReport:
        """Start a rebuild into a new generation; the active one serves until it is swapped.

        202: follow it at the Location (or in the ops report's ``rebuild``)."""
        job = start_rebuild(board, name)
        response.headers["Location"] = f"{prefix}/projections/{name}/rebuilds/{job.id}"
        return rebuild_report(job)

    @router.get(
        "/projections/{name}/rebuilds/{rebuild_id}",
        response_model=RebuildReport,
        responses={
            **FORBIDDEN,
            404: {"description": "No such projection, or no such rebuild in this process"},
            **UNAVAILABLE,
        },
    )
    async def rebuild_progress(
        name: Name,
        rebuild_id: Annotated[str, Path(max_length=64)],
        principal: Annotated[Principal, Depends(require("ops:read"))],
        board: Board,
    ) -> RebuildReport:
        watched = board.projections.get(name)
        if watched is None:
            raise UnknownProjection(service, name)
        job = watched.rebuilds.find(rebuild_id) if watched.rebuilds is not None else None
        if job is None:
            raise RebuildNotFound(rebuild_id)
        return rebuild_report(job)

    return router
