"""The analytics service process: ``uvicorn --factory services.analytics.app:create_app``.

The only place that wires things together: settings -> engine -> event store ->
handlers' dependencies -> routers. The lifespan prepares the schema and runs, beside
the HTTP server, the outbox relay (segment entries and exits), the projector (a
``LiveProjection`` over the contacts, pipeline, tickets, loyalty and alerts topics,
so a rebuild's swap is followed) and the sweep that evaluates the segments again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from libs.events.catalog.analytics import catalog
from libs.events.outbox import OutboxRelay
from libs.events.projection import LiveProjection
from libs.events.store import EventStore
from libs.platform.app import create_service_app
from libs.platform.background import every, keep_running, stop_all
from libs.platform.db import create_engine
from libs.platform.leadership import exclusively, while_leading
from libs.platform.migrations import prepare_schema
from libs.platform.ops import OpsBoard, WatchedProjection, ops_router
from libs.platform.relay import outbox_relay as platform_relay
from services.analytics.api import routers
from services.analytics.domain.sources import SOURCES
from services.analytics.handlers import SERVICE, SOURCE, Analytics
from services.analytics.handlers.segments import sweep
from services.analytics.migrations import FOLDER as MIGRATIONS
from services.analytics.read_model.projection import projection_factory
from services.analytics.settings import Settings

log = logging.getLogger(__name__)

VERSION = "0.1.0"
# Long enough for the relay and the projector to finish the batch in hand.
STOP_SECONDS = 10.0


def outbox_relay(settings: Settings, engine: AsyncEngine) -> OutboxRelay:
    """The store and its relay: what serving and ``crm republish analytics`` publish through."""
    return platform_relay(
        settings, EventStore(engine), service=SERVICE, source=SOURCE, catalog=catalog
    )


def create_app(settings: Settings | None = None, analytics: Analytics | None = None) -> FastAPI:
    """``analytics`` lets tests inject a clock; it must use this settings' database."""
    settings = settings or Settings()
    engine = analytics.engine if analytics is not None else create_engine(settings.database_url)
    relay = outbox_relay(settings, engine)
    if analytics is None:
        analytics = Analytics(store=relay.store)
    analytics.on_append = relay.wake
    wired = analytics

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await prepare_schema(engine, MIGRATIONS)
        projector = LiveProjection(
            projection_factory,
            engine,
            settings.kafka(),
            SOURCES,
            generation_check_seconds=settings.generation_check_seconds,
        )
        # Workers starting together would race to create the generation's tables.
        async with exclusively(engine, "analytics-tables"):
            current = await projector.current()
            async with engine.begin() as conn:
                await conn.run_sync(current.metadata.create_all)
        app.state.projector = projector
        ops = OpsBoard(
            SERVICE,
            settings.kafka(),
            outbox=engine,
            projections=[WatchedProjection.live(projector)],
        )
        app.state.ops = ops
        stop = asyncio.Event()
        tasks = [
            asyncio.create_task(
                keep_running("analytics relay", relay.run, stop, cleanup=relay.close),
                name="analytics-relay",
            )
        ]
        if settings.run_projector:
            projecting = while_leading(
                engine,
                "analytics-projector",
                stop,
                lambda stop: keep_running("analytics projector", projector.run, stop),
            )
            tasks.append(asyncio.create_task(projecting, name="analytics-projector"))
        if settings.run_sweep:
            sweeping = every(
                "segment sweep", settings.segment_sweep_seconds, lambda: sweep(wired), stop
            )
            tasks.append(asyncio.create_task(sweeping, name="analytics-sweep"))
        try:
            yield
        finally:
            stop.set()
            await ops.stop()
            await stop_all("analytics", tasks, timeout=STOP_SECONDS)
            await relay.close()
            await engine.dispose()

    app = create_service_app(
        title="CRM analytics",
        version=VERSION,
        settings=settings,
        routers=[*routers, ops_router(SERVICE)],
        lifespan=lifespan,
    )
    app.state.analytics = analytics
    return app
