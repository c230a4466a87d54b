"""The alerts service process: ``uvicorn --factory services.alerts.app:create_app``.

The only place that wires things together: settings -> engine -> event store ->
handlers' dependencies -> router. The lifespan prepares the schema and runs, beside
the HTTP server, the outbox relay, the churn projector (a consumer of the
contacts, pipeline, tickets and loyalty topics), the sweep that assesses every
customer again as time passes, and the weekly lists' publisher.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from libs.events.catalog.alerts import catalog
from libs.events.outbox import OutboxRelay
from libs.events.projection import ProjectionRunner
from libs.events.store import EventStore
from libs.platform.app import create_service_app
from libs.platform.background import every, keep_running, stop_all
from libs.platform.db import create_engine
from libs.platform.migrations import prepare_schema
from libs.platform.ops import OpsBoard, WatchedProjection, ops_router
from libs.platform.relay import outbox_relay as platform_relay
from services.alerts import metrics, read_model
from services.alerts.api import router
from services.alerts.domain.sources import SOURCES
from services.alerts.handlers import (
    SERVICE,
    SOURCE,
    Alerts,
    publish_weekly_lists,
    sweep,
)
from services.alerts.migrations import FOLDER as MIGRATIONS
from services.alerts.notifications import runtime as notifications_runtime
from services.alerts.notifications.api import router as webhooks_router
from services.alerts.projector import ChurnFacts
from services.alerts.settings import Settings

log = logging.getLogger(__name__)

VERSION = "0.1.0"
# Long enough for the relay and the projector to finish the batch in hand.
STOP_SECONDS = 10.0


def outbox_relay(settings: Settings, engine: AsyncEngine) -> OutboxRelay:
    """The store and its relay: what serving and ``crm republish alerts`` publish through."""
    return platform_relay(
        settings, EventStore(engine), service=SERVICE, source=SOURCE, catalog=catalog
    )


def create_app(settings: Settings | None = None, alerts: Alerts | None = None) -> FastAPI:
    """``alerts`` lets tests inject a clock; it must use this settings' database."""
    settings = settings or Settings()
    engine = alerts.engine if alerts is not None else create_engine(settings.database_url)
    relay = outbox_relay(settings, engine)
    if alerts is None:
        alerts = Alerts(store=relay.store, context_seconds=settings.churn_context_seconds)
    alerts.on_append = relay.wake
    wired = alerts
    notifications, deliveries = notifications_runtime.wire(settings, alerts)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await prepare_schema(engine, MIGRATIONS)
        projector = ProjectionRunner(ChurnFacts(wired), engine, settings.kafka(), SOURCES)
        await projector.create_tables()
        app.state.projector = projector
        async with engine.connect() as conn:  # the gauge from the first scrape
            metrics.set_levels(await read_model.customers_by_level(conn))
        stop = asyncio.Event()
        tasks = [
            asyncio.create_task(
                keep_running("alerts relay", relay.run, stop, cleanup=relay.close),
                name="alerts-relay",
            )
        ]
        if settings.run_projector:
            tasks.append(
                asyncio.create_task(
                    keep_running("churn projector", projector.run, stop), name="alerts-projector"
                )
            )
        if settings.run_sweep:
            sweeping = every("churn sweep", settings.sweep_seconds, lambda: sweep(wired), stop)
            tasks.append(asyncio.create_task(sweeping, name="alerts-sweep"))
        for name, loop in notifications_runtime.background(
            settings, notifications, deliveries
        ).items():
            tasks.append(asyncio.create_task(keep_running(name, loop, stop), name=name))
        watched = [WatchedProjection.fixed(projector)]
        if notifications.dispatcher is not None:
            watched.append(WatchedProjection.fixed(notifications.dispatcher))
        app.state.ops = OpsBoard(SERVICE, settings.kafka(), outbox=engine, projections=watched)
        if settings.run_weekly:
            weekly = every(
                "weekly risk lists",
                settings.weekly_check_seconds,
                lambda: publish_weekly_lists(wired),
                stop,
                at_start=True,
            )
            tasks.append(asyncio.create_task(weekly, name="alerts-weekly"))
        try:
            yield
        finally:
            stop.set()
            await stop_all("alerts", tasks, timeout=STOP_SECONDS)
            await relay.close()
            await engine.dispose()

    app = create_service_app(
        title="CRM alerts",
        version=VERSION,
        settings=settings,
        routers=[router, webhooks_router, ops_router(SERVICE)],
        lifespan=lifespan,
    )
    app.state.alerts = alerts
    app.state.notifications = notifications
    app.state.webhook_worker = deliveries
    return app
