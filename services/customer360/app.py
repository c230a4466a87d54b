"""Wiring: the only place that knows which engine, broker and tasks the service uses.

    uvicorn --factory services.customer360.app:create_app --port 8006

The lifespan makes the active generation's tables exist, then runs background
tasks beside the API: the projector (a ``LiveProjection``, so a rebuild's swap is
followed), the lag monitor, planner upkeep and, on PostgreSQL, the listener that
wakes ``?min_version`` reads when a batch commits. On shutdown they are asked to
stop, given time to finish their batch, and cancelled only if they do not.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

from fastapi import FastAPI

from libs.platform.app import create_service_app
from libs.platform.db import create_engine, is_postgres
from libs.platform.leadership import exclusively, while_leading
from libs.platform.migrations import prepare_schema
from libs.platform.ops import OpsBoard, WatchedProjection, ops_router
from libs.platform.planner_statistics import keep_statistics_fresh
from services.customer360.api import router
from services.customer360.handlers import LagMonitor, Projector
from services.customer360.migrations import FOLDER as MIGRATIONS
from services.customer360.read_model.applied import listen
from services.customer360.read_model.reader import Customer360Reader
from services.customer360.settings import Settings

log = logging.getLogger(__name__)

VERSION = "0.1.0"
# Long enough for a batch in flight to commit; a hung broker call is cancelled after.
STOP_GRACE_SECONDS = 10.0


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    kafka = settings.kafka()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings.database_url)
        projector = Projector(
            engine, kafka, generation_check_seconds=settings.generation_check_seconds
        )
        await prepare_schema(engine, MIGRATIONS)
        # Workers starting together would race to create the generation's tables.
        async with exclusively(engine, "customer360-tables"):
            await projector.prepare()
        reader = Customer360Reader(
            engine, generation_check_seconds=settings.generation_check_seconds
        )
        monitor = LagMonitor(engine, kafka, reader, refresh_seconds=settings.lag_refresh_seconds)
        reader.lag_monitor = monitor
        app.state.reader = reader
        app.state.kafka = kafka
        app.state.projector = projector if settings.run_projector else None
        # The same factory and catalogue `crm rebuild customer360` uses; the service
        # writes no events, so it has no outbox.
        ops = OpsBoard("customer360", kafka, projections=[WatchedProjection.live(projector.live)])
        app.state.ops = ops
        app.state.rebuilds = ops.rebuilds_of("customer360")

        stop = asyncio.Event()
        tasks = [
            asyncio.create_task(monitor.run(stop), name="customer360-lag"),
            asyncio.create_task(keep_statistics_fresh(engine, stop), name="customer360-statistics"),
        ]
        if settings.run_projector:
            # One projector per database, however many worker processes serve the API.
            projecting = while_leading(engine, "customer360-projector", stop, projector.run)
            tasks.append(asyncio.create_task(projecting, name="customer360-projector"))
        if is_postgres(engine):
            tasks.append(
                asyncio.create_task(listen(engine, reader.signal, stop), name="customer360-applied")
            )
        try:
            yield
        finally:
            stop.set()
            await ops.stop()
            _, pending = await asyncio.wait(tasks, timeout=STOP_GRACE_SECONDS)
            for task in pending:
                log.warning("customer360: %s did not stop in time; cancelling", task.get_name())
                task.cancel()
            for task in tasks:
                with suppress(asyncio.CancelledError, Exception):
                    await task
            await engine.dispose()

    return create_service_app(
        title="Customer 360",
        version=VERSION,
        settings=settings,
        routers=[router, ops_router("customer360")],
        lifespan=lifespan,
    )


def main() -> None:
    import uvicorn

    settings = Settings()
    uvicorn.run(create_app(settings), host=settings.http_host, port=settings.http_port)


if __name__ == "__main__":
    main()
