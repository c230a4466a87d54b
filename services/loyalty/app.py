"""The loyalty service process: ``uvicorn --factory services.loyalty.app:create_app``.

The only place that wires things together: settings -> engine -> event store ->
handlers' dependencies -> router, and what runs beside the HTTP server
(``libs.platform.runtime``): the outbox relay, the reactions to orders and merges (a
consumer of the pipeline's and contacts' topics) and the sweeps (expiry, birthdays).
"""

from __future__ import annotations

from fastapi import FastAPI

from libs.events.projection import ProjectionRunner
from libs.platform.app import create_service_app
from libs.platform.db import create_engine
from libs.platform.ops import ops_router
from libs.platform.relay import service_relay
from libs.platform.runtime import Projected, ServiceRuntime, periodic
from services.loyalty.api import router
from services.loyalty.handlers import SERVICE, Loyalty
from services.loyalty.handlers.reactions import SOURCES, Earning
from services.loyalty.handlers.sweeps import award_birthdays, sweep_expiry
from services.loyalty.migrations import FOLDER as MIGRATIONS
from services.loyalty.service import SERVICE as DECLARATION
from services.loyalty.settings import Settings

VERSION = "0.1.0"


def create_app(settings: Settings | None = None, loyalty: Loyalty | None = None) -> FastAPI:
    """``loyalty`` lets tests inject a clock; it must use this settings' database."""
    settings = settings or Settings()
    engine = loyalty.engine if loyalty is not None else create_engine(settings.database_url)
    relay = service_relay(DECLARATION, settings, engine)
    if loyalty is None:
        loyalty = Loyalty(store=relay.store)
    loyalty.on_append = relay.wake
    wired = loyalty
    earning = ProjectionRunner(Earning(wired), engine, settings.kafka(), SOURCES)

    async def expire_and_award() -> None:
        while await sweep_expiry(wired, settings.expiry_sweep_batch):
            if runtime.stopping.is_set():
                return
        await award_birthdays(wired)

    sweeping = periodic(
        "loyalty-sweep", settings.expiry_sweep_seconds, expire_and_award, at_start=True
    )
    runtime = ServiceRuntime(
        SERVICE,
        engine,
        settings.kafka(),
        MIGRATIONS,
        relay=relay,
        projections=[Projected(earning, run=settings.run_reactions)],
        jobs=[sweeping] if settings.run_reactions else [],
    )
    app = create_service_app(
        title="CRM loyalty",
        version=VERSION,
        settings=settings,
        routers=[router, ops_router(SERVICE)],
        lifespan=runtime.lifespan,
    )
    app.state.loyalty = loyalty
    app.state.earning = earning
    app.state.ops = runtime.ops
    return app
