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
from collections.abc import AsyncIterator

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from libs.events.catalog.loyalty import catalog
from libs.events.outbox import OutboxRelay
from libs.events.projection import ProjectionRunner
from libs.events.store import EventStore
from libs.platform.app import create_service_app
from libs.platform.background import every, keep_running, stop_all
from libs.platform.db import create_engine
from libs.platform.migrations import prepare_schema
from libs.platform.ops import OpsBoard, WatchedProjection, ops_router
from libs.platform.relay import outbox_relay as platform_relay
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


def outbox_relay(settings: Settings, engine: AsyncEngine) -> OutboxRelay:
    """The store and its relay: what serving and ``crm republish loyalty`` publish through."""
    return platform_relay(
        settings, EventStore(engine), service=SERVICE, source=SOURCE, catalog=catalog
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
        app.state.ops = OpsBoard(
            SERVICE, settings.kafka(), outbox=engine, projections=[WatchedProjection.fixed(earning)]
        )
        stop = asyncio.Event()
        tasks = [
            asyncio.create_task(
                keep_running("loyalty relay", relay.run, stop, cleanup=relay.close),
                name="loyalty-relay",
            )
        ]
        if settings.run_reactions:

            async def expire_and_award() -> None:
                while await sweep_expiry(wired, settings.expiry_sweep_batch):
                    if stop.is_set():
                        return
                await award_birthdays(wired)

            reacting = keep_running("loyalty reactions", earning.run, stop)
            sweeping = every(
                "loyalty expiry sweep",
                settings.expiry_sweep_seconds,
                expire_and_award,
                stop,
                at_start=True,
            )
            tasks.append(asyncio.create_task(reacting, name="loyalty-reactions"))
            tasks.append(asyncio.create_task(sweeping, name="loyalty-sweep"))
        try:
            yield
        finally:
            stop.set()
            await stop_all("loyalty", tasks, timeout=STOP_SECONDS)
            await relay.close()
            await engine.dispose()

    app = create_service_app(
        title="CRM loyalty",
        version=VERSION,
        settings=settings,
        routers=[router, ops_router(SERVICE)],
        lifespan=lifespan,
    )
    app.state.loyalty = loyalty
    return app
