"""The loyalty service process: ``uvicorn --factory services.loyalty.app:create_app``.

The only place that wires things together: settings -> engine -> event store ->
handlers' dependencies -> router. The lifespan creates the tables and runs, beside
the HTTP server, the outbox relay, the reactions to orders and merges (a consumer
of the pipeline's and contacts' topics) and the sweeps (expiry, birthdays).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from libs.events.catalog.loyalty import catalog
from libs.events.kafka import service_topic
from libs.events.outbox import OutboxRelay
from libs.events.projection import ProjectionRunner
from libs.events.store import EventStore
from libs.platform.app import create_service_app
from libs.platform.db import create_engine
from libs.platform.migrations import prepare_schema
from services.loyalty.api import router
from services.loyalty.handlers import SERVICE, SOURCE, Loyalty
from services.loyalty.handlers.reactions import SOURCES, Earning
from services.loyalty.handlers.sweeps import award_birthdays, sweep_expiry
from services.loyalty.migrations import FOLDER as MIGRATIONS
from services.loyalty.settings import Settings

log = logging.getLogger(__name__)

VERSION = "0.1.0"
# Long enough for the relay and the consumer to finish the batch in hand.
STOP_SECONDS = 10.0
MAX_BACKOFF_SECONDS = 30.0


def outbox_relay(settings: Settings, engine: AsyncEngine) -> OutboxRelay:
    """The store and its relay: what serving and ``crm republish loyalty`` publish through."""
    return OutboxRelay(
        EventStore(engine),
        settings.kafka(),
        service=SERVICE,
        topic=service_topic(SERVICE),
        source=SOURCE,
        schema_url=catalog.schema_url,
    )


def create_app(settings: Settings | None = None, loyalty: Loyalty | None = None) -> FastAPI:
    """``loyalty`` lets tests inject a clock; it must use this settings' database."""
    settings = settings or Settings()
    engine = loyalty.engine if loyalty is not None else create_engine(settings.database_url)
    relay = outbox_relay(settings, engine)
    if loyalty is None:
        loyalty = Loyalty(store=relay.store)
    loyalty.on_append = relay.wake
    wired = loyalty

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await prepare_schema(engine, MIGRATIONS)
        earning = ProjectionRunner(Earning(wired), engine, settings.kafka(), SOURCES)
        await earning.create_tables()
        app.state.earning = earning
        stop = asyncio.Event()
        tasks = [asyncio.create_task(_keep_running("relay", relay.run, stop, relay.close))]
        if settings.run_reactions:
            tasks.append(asyncio.create_task(_keep_running("reactions", earning.run, stop)))
            tasks.append(asyncio.create_task(_keep_sweeping(wired, settings, stop)))
        try:
            yield
        finally:
            stop.set()
            _, pending = await asyncio.wait(tasks, timeout=STOP_SECONDS)
            for task in pending:
                log.warning("loyalty: %s did not stop in time; cancelled", task.get_name())
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            await relay.close()
            await engine.dispose()

    app = create_service_app(
        title="CRM loyalty",
        version=VERSION,
        settings=settings,
        routers=[router],
        lifespan=lifespan,
    )
    app.state.loyalty = loyalty
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
            log.exception("loyalty %s failed; restarting in %.1fs", name, backoff)
            if cleanup is not None:
                await cleanup()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)


async def _keep_sweeping(loyalty: Loyalty, settings: Settings, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            while await sweep_expiry(loyalty, settings.expiry_sweep_batch) and not stop.is_set():
                pass
            await award_birthdays(loyalty)
        except Exception:
            log.exception("loyalty expiry sweep failed; trying again next round")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=settings.expiry_sweep_seconds)
