"""HTTP: the 360 view of a customer, and the projection's status for ops."""

from __future__ import annotations

from typing import Annotated, Any

from aiokafka.errors import KafkaError
from fastapi import Depends, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from libs.auth import Principal, require
from libs.events.kafka import dlq_topic
from libs.events.lag import end_offsets
from libs.events.rebuilds import RebuildAlreadyRunning, Rebuilds
from libs.platform.errors import DomainError, NotFound
from libs.platform.ops import (
    DeadLetters,
    RebuildNotFound,
    RebuildReport,
    RebuildRunning,
    rebuild_report,
)
from libs.platform.routing import ServiceRouter
from services.customer360.handlers import Projector, status_of
from services.customer360.read_model.reader import Customer360, Customer360Reader

router = ServiceRouter(prefix="/api/v1", tags=["customer360"])

DEFAULT_WAIT_MS = 2_000
MAX_WAIT_MS = 10_000


class CustomerNotFound(NotFound):
    """No such customer in the caller's tenant (another tenant's is not found either)."""

    def __init__(self, customer_id: str) -> None:
        super().__init__(f"customer {customer_id} not found", customer_id=customer_id)


class ViewNotYetAtVersion(DomainError):
    """The projection has not reached the version the client wrote, within its wait.

    504: the write happened, the read side is behind; asking again later
    succeeds. Not 409 (nothing the client must resolve). A customer the view has never
    seen is a 404 unless the projection is measured behind (``_projection_behind``).
    """

    status_code = 504

    def __init__(
        self, customer_id: str, min_version: int, version: int | None, waited_ms: int
    ) -> None:
        super().__init__(
            f"the 360 view of customer {customer_id} has not reached version {min_version} "
            f"within {waited_ms} ms",
            headers={"Retry-After": "1"},
            code="view_behind",
            customer_id=customer_id,
            min_version=min_version,
            version=version,
            waited_ms=waited_ms,
        )


class StatusUnavailable(DomainError):
    status_code = 503

    def __init__(self, reason: str) -> None:
        super().__init__(f"projection status unavailable: {reason}", headers={"Retry-After": "5"})


class PartitionStatus(BaseModel):
    topic: str
    partition: int
    next_offset: int
    end_offset: int
    lag_events: int
    # caught_up, behind, stalled (behind and not moving), beyond_end (the topic lost
    # what was read: the projector reads it again from the start).
    state: str


class ProjectorStatus(BaseModel):
    # Whether this process's projector is consuming (False on a read-only replica).
    running: bool
    generation: int | None
    restarts: int
    last_error: str | None


class ProjectionStatusReport(BaseModel):
    projection: str
    generation: int
    lag_events: int
    lag_seconds: float
    # True while any partition is stalled or beyond its end: the view is not following.
    stalled: bool
    partitions: list[PartitionStatus]
    projector: ProjectorStatus | None


async def reader_of(request: Request) -> Customer360Reader:
    # async: FastAPI would run a plain function in a worker thread, on every request.
    reader: Customer360Reader = request.app.state.reader
    return reader


@router.get(
    "/customers/{customer_id}/360",
    response_model=Customer360,
    responses={
        404: {"description": "No such customer in the caller's tenant"},
        504: {"description": "min_version not reached within wait_ms (body code: view_behind)"},
    },
)
async def customer_360(
    customer_id: Annotated[str, Path(min_length=1, max_length=64)],
    principal: Annotated[Principal, Depends(require("customers:read"))],
    reader: Annotated[Customer360Reader, Depends(reader_of)],
    response: Response,
    min_version: Annotated[
        int | None,
        Query(ge=1, description="Wait until the view includes this version of the customer"),
    ] = None,
    wait_ms: Annotated[
        int, Query(ge=0, le=MAX_WAIT_MS, description="How long min_version may wait")
    ] = DEFAULT_WAIT_MS,
) -> Customer360:
    tenant_id = principal.tenant_id
    if min_version is not None:
        waited = await reader.wait_for_version(
            tenant_id, customer_id, min_version, timeout=wait_ms / 1000
        )
        if not waited.reached:
            if waited.version is None and not _projection_behind(reader):
                # Nothing of this id arrived and nothing is waiting to: an unknown id.
                raise CustomerNotFound(customer_id)
            raise ViewNotYetAtVersion(
                customer_id, min_version, waited.version, round(waited.waited_seconds * 1000)
            )
    view = await reader.view(tenant_id, customer_id)
    if view is None:
        raise CustomerNotFound(customer_id)
    # Personal data: no shared cache may keep it (an erasure must not linger there).
    response.headers["Cache-Control"] = "no-store"
    return view


def _projection_behind(reader: Customer360Reader) -> bool:
    """Whether the lag monitor's last measurement has the projection behind or stalled:
    then an id it has not seen may still be on its way (504, not 404)."""
    monitor = reader.lag_monitor
    status = monitor.latest if monitor is not None else None
    return status is not None and (status.stalled or status.lag_events > 0)


@router.get("/projections/customer360/status", response_model=ProjectionStatusReport)
async def projection_status(
    request: Request,
    principal: Annotated[Principal, Depends(require("customers:read"))],
    reader: Annotated[Customer360Reader, Depends(reader_of)],
) -> ProjectionStatusReport:
    try:
        status = await status_of(reader.engine, request.app.state.kafka, reader)
    except (KafkaError, OSError, TimeoutError) as exc:
        raise StatusUnavailable(f"broker unreachable ({type(exc).__name__})") from exc
    projector: Projector | None = request.app.state.projector
    state = projector.state() if projector is not None else None
    return ProjectionStatusReport(
        projection=status.projection,
        generation=status.generation,
        lag_events=status.lag_events,
        lag_seconds=round(status.lag_seconds, 3),
        stalled=status.stalled,
        partitions=[
            PartitionStatus(
                topic=p.topic,
                partition=p.partition,
                next_offset=p.next_offset,
                end_offset=p.end_offset,
                lag_events=p.events,
                state=p.state,
            )
            for p in status.partitions
        ],
        projector=ProjectorStatus(
            running=state.running,
            generation=state.generation,
            restarts=state.restarts,
            last_error=state.last_error,
        )
        if state is not None
        else None,
    )


@router.get(
    "/projections/customer360/health",
    responses={503: {"description": "The projection is stalled, or its lag is not measured"}},
)
async def projection_health(
    reader: Annotated[Customer360Reader, Depends(reader_of)],
) -> JSONResponse:
    """For probes and alerts: 200 while the projection follows its topics, else 503.

    Quotes the lag monitor's last measurement (no broker call per probe); it names
    no tenant's data, so it asks for no credentials."""
    monitor = reader.lag_monitor
    status = monitor.latest if monitor is not None else None
    if status is None:
        return JSONResponse({"status": "unknown", "reason": "lag not measured yet"}, 503)
    body = {
        "status": "stalled" if status.stalled else "ok",
        "generation": status.generation,
        "lag_events": status.lag_events,
        "lag_seconds": round(status.lag_seconds, 3),
        "measured_at": monitor.measured_at.isoformat() if monitor and monitor.measured_at else None,
    }
    return JSONResponse(body, 503 if status.stalled else 200)


class OpsReport(BaseModel):
    """The projection's figures as this service's own ops route shows them (kept for
    callers of it; ``GET /api/v1/ops/customer360`` is the shape every service shares)."""

    service: str
    projection: str
    generation: int
    lag_events: int
    lag_seconds: float
    stalled: bool
    dead_letters: list[DeadLetters]
    # The last rebuild started over HTTP by this process (null: none since it started).
    rebuild: RebuildReport | None


def rebuilds_of(request: Request) -> Rebuilds:
    rebuilds: Rebuilds = request.app.state.rebuilds
    return rebuilds


_UNAVAILABLE: dict[int | str, dict[str, Any]] = {
    503: {"description": "The broker did not answer; Retry-After says when to ask"}
}
_FORBIDDEN: dict[int | str, dict[str, Any]] = {
    403: {"description": "The caller's roles do not grant the permission"}
}


@router.get(
    "/projections/customer360/ops",
    response_model=OpsReport,
    responses={**_FORBIDDEN, **_UNAVAILABLE},
)
async def projection_ops(
    request: Request,
    principal: Annotated[Principal, Depends(require("ops:read"))],
    reader: Annotated[Customer360Reader, Depends(reader_of)],
    rebuilds: Annotated[Rebuilds, Depends(rebuilds_of)],
) -> OpsReport:
    """Lag, dead letters per consumer and topic, and the running rebuild's progress."""
    kafka = request.app.state.kafka
    projection = await reader.projection()
    try:
        status = await status_of(reader.engine, kafka, reader)
        dlq_ends = await end_offsets(kafka, [dlq_topic(t) for t in projection.topics])
    except (KafkaError, OSError, TimeoutError) as exc:
        raise StatusUnavailable(f"broker unreachable ({type(exc).__name__})") from exc
    held: dict[str, int] = {}
    for tp, end in dlq_ends.items():
        held[tp.topic] = held.get(tp.topic, 0) + end
    return OpsReport(
        service="customer360",
        projection=status.projection,
        generation=status.generation,
        lag_events=status.lag_events,
        lag_seconds=round(status.lag_seconds, 3),
        stalled=status.stalled,
        dead_letters=[
            DeadLetters(
                consumer=projection.key,
                topic=topic,
                dlq_topic=dlq_topic(topic),
                messages=held.get(dlq_topic(topic), 0),
            )
            for topic in projection.topics
        ],
        rebuild=rebuild_report(rebuilds.latest) if rebuilds.latest is not None else None,
    )


@router.post(
    "/projections/customer360/rebuilds",
    status_code=202,
    response_model=RebuildReport,
    responses={
        **_FORBIDDEN,
        409: {"description": "A rebuild is already running (body: rebuild_id)"},
    },
)
async def start_rebuild(
    response: Response,
    principal: Annotated[Principal, Depends(require("ops:rebuild"))],
    rebuilds: Annotated[Rebuilds, Depends(rebuilds_of)],
) -> RebuildReport:
    """Start a rebuild into a new generation; the active one serves until it is swapped.

    202: follow it at the Location (or in the ops report's ``rebuild``)."""
    try:
        job = rebuilds.start()
    except RebuildAlreadyRunning as running:
        raise RebuildRunning(running) from None
    # The same job as POST /api/v1/ops/customer360/projections/customer360/rebuilds.
    response.headers["Location"] = f"/api/v1/projections/customer360/rebuilds/{job.id}"
    return rebuild_report(job)


@router.get(
    "/projections/customer360/rebuilds/{rebuild_id}",
    response_model=RebuildReport,
    responses={**_FORBIDDEN, 404: {"description": "No such rebuild in this process"}},
)
async def rebuild_progress(
    rebuild_id: Annotated[str, Path(max_length=64)],
    principal: Annotated[Principal, Depends(require("ops:read"))],
    rebuilds: Annotated[Rebuilds, Depends(rebuilds_of)],
) -> RebuildReport:
    job = rebuilds.find(rebuild_id)
    if job is None:
        raise RebuildNotFound(rebuild_id)
    return rebuild_report(job)
