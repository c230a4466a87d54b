"""Wiring: the only place that knows which engine, broker and work the service uses.

    uvicorn --factory services.customer360.app:create_app --port 8006

Beside the API the service runs (``libs.platform.runtime``): the projector (a
``LiveProjection``, so a rebuild's swap is followed, in one worker process per
database), the lag monitor, planner upkeep and, on PostgreSQL, the listener that wakes
``?min_version`` reads when a batch commits. The service writes no events, so it has
no outbox.
"""

from __future__ import annotations

from fastapi import FastAPI

from libs.platform.app import create_service_app
from libs.platform.db import create_engine, is_postgres
from libs.platform.ops import ops_router
from libs.platform.runtime import Job, Projected, ServiceRuntime, periodic, statistics
from services.customer360.api import router
from services.customer360.handlers import LagMonitor, Projector
from services.customer360.migrations import FOLDER as MIGRATIONS
from services.customer360.read_model.applied import listen
from services.customer360.read_model.reader import Customer360Reader
from services.customer360.settings import Settings

VERSION = "0.1.0"
SERVICE = "customer360"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    kafka = settings.kafka()
    engine = create_engine(settings.database_url)
    projector = Projector(engine, kafka, generation_check_seconds=settings.generation_check_seconds)
    reader = Customer360Reader(engine, generation_check_seconds=settings.generation_check_seconds)
    monitor = LagMonitor(engine, kafka, reader, refresh_seconds=settings.lag_refresh_seconds)
    reader.lag_monitor = monitor
    jobs = [
        periodic(
            f"{SERVICE}-lag", settings.lag_refresh_seconds, monitor.measure_once, at_start=True
        ),
        statistics(engine, SERVICE),
    ]
    if is_postgres(engine):
        jobs.append(Job(f"{SERVICE}-applied", lambda stop: listen(engine, reader.signal, stop)))
    runtime = ServiceRuntime(
        SERVICE,
        engine,
        kafka,
        MIGRATIONS,
        projections=[
            Projected(
                projector.live,
                run=settings.run_projector,
                leader=True,
                supervision=projector.supervision,
            )
        ],
        jobs=jobs,
    )
    app = create_service_app(
        title="Customer 360",
        version=VERSION,
        settings=settings,
        routers=[router, ops_router(SERVICE)],
        lifespan=runtime.lifespan,
    )
    app.state.reader = reader
    app.state.kafka = kafka
    app.state.projector = projector if settings.run_projector else None
    app.state.ops = runtime.ops
    # The same factory and catalogue `crm rebuild customer360` uses.
    app.state.rebuilds = runtime.ops.rebuilds_of(SERVICE)
    return app


def main() -> None:
    import uvicorn

    settings = Settings()
    uvicorn.run(create_app(settings), host=settings.http_host, port=settings.http_port)


if __name__ == "__main__":
    main()
