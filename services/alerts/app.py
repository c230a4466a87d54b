"""The alerts service process: ``uvicorn --factory services.alerts.app:create_app``.

The only place that wires things together: settings -> engine -> event store ->
handlers' dependencies -> router. The lifespan prepares the schema and runs, beside
the HTTP server, the outbox relay, the churn projector (a consumer of the
contacts, pipeline, tickets and loyalty topics) and the sweep that assesses every
customer again as time passes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from libs.events.catalog.alerts import catalog
from libs.events.kafka import service_topic
from libs.events.outbox import OutboxRelay
from libs.events.projection import ProjectionRunner
from libs.events.store import EventStore
from libs.platform.app import create_service_app
from libs.platform.db import create_engine
from libs.platform.migrations import prepare_schema
from services.alerts.api import router
from services.alerts.domain.sources import SOURCES
from services.alerts.handlers import SERVICE, SOURCE, Alerts, ChurnFacts, sweep
from services.alerts.migrations import FOLDER as MIGRATIONS
from services.alerts.settings import Settings

log = logging.getLogger(__name__)

VERSION = "0.1.0"
# Long enough for the relay and the projector to finish the batch in hand.
STOP_SECONDS = 10.0
MAX_BACKOFF_SECONDS = 30.0


def outbox_relay(settings: Settings, engine: AsyncEngine) -> OutboxRelay:
    """The store and its relay: what serving and ``crm republish alerts`` publish through."""
    return OutboxRelay(
        EventStore(engine),
        settings.kafka(),
        service=SERVICE,
        topic=service_topic(SERVICE),
        source=SOURCE,
        schema_url=catalog.schema_url,
    )


def create_app(settings: Settings | None = None, alerts: Alerts | None = None) -> FastAPI:
    """``alerts`` lets tests inject a clock; it must use this settings' database."""
    settings = settings or Settings()
    engine = alerts.engine if alerts is not None else create_engine(settings.database_url)
    relay = outbox_relay(settings, engine)
    if alerts is None:
        alerts = Alerts(store=relay.store)
    alerts.on_append = relay.wake
    wired = alerts

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await prepare_schema(engine, MIGRATIONS)
        projector = ProjectionRunner(ChurnFacts(wired), engine, settings.kafka(), SOURCES)
        await projector.create_tables()
        app.state.projector = projector
        stop = asyncio.Event()
        tasks = [asyncio.create_task(_keep_running("relay", relay.run, stop, relay.close))]
        if settings.run_projector:
            tasks.append(asyncio.create_task(_keep_running("projector", projector.run, stop)))
        if settings.run_sweep:
            tasks.append(asyncio.create_task(_keep_sweeping(wired, settings, stop)))
        try:
            yield
        finally:
            stop.set()
            _, pending = await asyncio.wait(tasks, timeout=STOP_SECONDS)
            for task in pending:
                log.warning("alerts: %s did not stop in time; cancelled", task.get_name())
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            await relay.close()
            await engine.dispose()

    app = create_service_app(
        title="CRM alerts",
        version=VERSION,
        settings=settings,
        routers=[router],
        lifespan=lifespan,
    )
    app.state.alerts = alerts
    return app


async def _keep_running(
    name: str,
    run: Callable[[asyncio.Event], Awaitable[None]],
    stop: asyncio.Event,
    cleanup: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """A broker outage or a database restart must not end the task for the life of
    the process: log it, back off, start again."""
    backoff = 0.5
    while not stop.is_set():
        try:
            await run(stop)
        except Exception:
            log.exception("alerts %s failed; restarting in %.1fs", name, backoff)
            if cleanup is not None:
                await cleanup()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)


async def _keep_sweeping(alerts: Alerts, settings: Settings, stop: asyncio.Event) -> None:
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=settings.sweep_seconds)
        if stop.is_set():
            return
        try:
            await sweep(alerts)
        except Exception:
            log.exception("alerts sweep failed; trying again next round")
