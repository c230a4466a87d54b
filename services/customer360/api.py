"""HTTP: the 360 view of a customer, and the projection's status for ops."""

from __future__ import annotations

from typing import Annotated

from aiokafka.errors import KafkaError
from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from libs.auth import Principal, require
from libs.platform.errors import DomainError, NotFound
from services.customer360.handlers import Projector, status_of
from services.customer360.read_model.reader import Customer360, Customer360Reader

router = APIRouter(prefix="/api/v1", tags=["customer360"])

DEFAULT_WAIT_MS = 2_000
MAX_WAIT_MS = 10_000


class CustomerNotFound(NotFound):
    """No such customer in the caller's tenant (another tenant's is not found either)."""

    def __init__(self, customer_id: str) -> None:
        super().__init__(f"customer {customer_id} not found", customer_id=customer_id)


class ViewNotYetAtVersion(DomainError):
    """The projection has not reached the version the client wrote, within its wait.

    504: the write happened, the read side is behind; asking again later
    succeeds. Not 409 (nothing the client must resolve) and not 404 (the customer
    may not be projected yet at all).
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
            raise ViewNotYetAtVersion(
                customer_id, min_version, waited.version, round(waited.waited_seconds * 1000)
            )
    view = await reader.view(tenant_id, customer_id)
    if view is None:
        raise CustomerNotFound(customer_id)
    # Personal data: no shared cache may keep it (an erasure must not linger there).
    response.headers["Cache-Control"] = "no-store"
    return view


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
