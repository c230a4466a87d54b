"""The tickets service process: ``uvicorn --factory services.tickets.app:create_app``.

The only place that wires things together: settings -> engine -> event store (with
the tickets' personal-data policy) -> handlers' dependencies -> router, and what runs
beside the HTTP server (``libs.platform.runtime``): the outbox relay, the projection of
contacts' events into known customers, and the SLA breach scheduler.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from fastapi import FastAPI

from libs.events.projection import LiveProjection
from libs.platform.app import create_service_app
from libs.platform.db import create_engine
from libs.platform.ops import ops_router
from libs.platform.relay import service_relay
from libs.platform.runtime import Projected, ServiceRuntime, periodic
from services.tickets.api import routers
from services.tickets.handlers import SERVICE, Tickets
from services.tickets.handlers.breach_scheduler import BreachScheduler
from services.tickets.migrations import FOLDER as MIGRATIONS
from services.tickets.read_model import known_customers
from services.tickets.read_model.known_customers import customer_directory, projection_factory
from services.tickets.service import SERVICE as DECLARATION
from services.tickets.settings import Settings

VERSION = "0.1.0"


def create_app(
    settings: Settings | None = None, *, clock: Callable[[], datetime] | None = None
) -> FastAPI:
    settings = settings or Settings()
    engine = create_engine(settings.database_url)
    relay = service_relay(DECLARATION, settings, engine)
    tickets = Tickets(
        store=relay.store,
        directory=customer_directory(engine, settings.contacts_url or None),
        on_append=relay.wake,
    )
    if clock is not None:
        tickets.clock = clock
    scheduler = BreachScheduler(tickets)
    customers = LiveProjection(
        projection_factory, engine, settings.kafka(), known_customers.catalog
    )

    runtime = ServiceRuntime(
        SERVICE,
        engine,
        settings.kafka(),
        MIGRATIONS,
        relay=relay,
        projections=[Projected(customers, run=settings.run_customer_projection)],
        jobs=(
            [periodic("tickets-sla", settings.sla_check_seconds, scheduler.round, at_start=True)]
            if settings.run_sla_scheduler
            else []
        ),
        close=[tickets.directory.aclose],
    )

    app = create_service_app(
        title="CRM tickets",
        version=VERSION,
        settings=settings,
        routers=[*routers, ops_router(SERVICE)],
        lifespan=runtime.lifespan,
    )
    app.state.tickets = tickets
    app.state.scheduler = scheduler
    app.state.ops = runtime.ops
    return app
