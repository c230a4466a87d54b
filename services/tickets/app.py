"""The tickets service process: ``uvicorn --factory services.tickets.app:create_app``.

The only place that wires things together: settings -> engine -> event store (with
the tickets' personal-data policy) -> handlers' dependencies -> router. The lifespan
creates the tables and runs, beside the HTTP server, the outbox relay, the projection
of contacts' events into known customers, and the SLA breach scheduler.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from datetime import datetime

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from libs.events.catalog.tickets import PERSONAL_DATA, catalog
from libs.events.outbox import OutboxRelay
from libs.events.projection import LiveProjection, ProjectionRunner
from libs.events.store import EventStore
from libs.platform.app import create_service_app
from libs.platform.background import keep_running, stop_all
from libs.platform.db import create_engine
from libs.platform.migrations import prepare_schema
from libs.platform.ops import OpsBoard, WatchedProjection, ops_router
from libs.platform.relay import outbox_relay as platform_relay
from services.tickets.api import routers
from services.tickets.handlers import SERVICE, SOURCE, Tickets
from services.tickets.handlers.breach_scheduler import BreachScheduler
from services.tickets.migrations import FOLDER as MIGRATIONS
from services.tickets.read_model import known_customers
from services.tickets.read_model.known_customers import CustomerDirectory, projection_factory
from services.tickets.settings import Settings

log = logging.getLogger(__name__)

VERSION = "0.1.0"
STOP_GRACE_SECONDS = 10.0


def outbox_relay(settings: Settings, engine: AsyncEngine) -> OutboxRelay:
    """The store (with the personal data policy) and its relay: what serving and
    ``crm republish tickets`` both publish through."""
    return platform_relay(
        settings,
        EventStore(engine, personal_data=PERSONAL_DATA),
        service=SERVICE,
        source=SOURCE,
        catalog=catalog,
    )


def create_app(
    settings: Settings | None = None, *, clock: Callable[[], datetime] | None = None
) -> FastAPI:
    settings = settings or Settings()
    engine = create_engine(settings.database_url)
    relay = outbox_relay(settings, engine)
    tickets = Tickets(
        store=relay.store,
        directory=CustomerDirectory(engine, settings.contacts_url or None),
        on_append=relay.wake,
    )
    if clock is not None:
        tickets.clock = clock
    scheduler = BreachScheduler(tickets, interval_seconds=settings.sla_check_seconds)
    customers = LiveProjection(
        projection_factory, engine, settings.kafka(), known_customers.catalog
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await prepare_schema(engine, MIGRATIONS)
        await ProjectionRunner(
            await customers.current(), engine, settings.kafka(), known_customers.catalog
        ).create_tables()
        ops = OpsBoard(
            SERVICE,
            settings.kafka(),
            outbox=engine,
            projections=[WatchedProjection.live(customers)],
        )
        app.state.ops = ops
        stop = asyncio.Event()
        tasks = [
            asyncio.create_task(
                keep_running("tickets relay", relay.run, stop, cleanup=relay.close),
                name="tickets-relay",
            )
        ]
        if settings.run_customer_projection:
            # A broker not up yet at start (``crm run`` starts everything at once) must
            # not end the projection for good: /readyz would wait for it forever.
            projecting = keep_running("tickets known-customers projection", customers.run, stop)
            tasks.append(asyncio.create_task(projecting, name="tickets-customers"))
        if settings.run_sla_scheduler:
            tasks.append(asyncio.create_task(scheduler.run(stop), name="tickets-sla"))
        try:
            yield
        finally:
            stop.set()
            await ops.stop()
            await stop_all("tickets", tasks, timeout=STOP_GRACE_SECONDS)
            await relay.close()
            await engine.dispose()

    app = create_service_app(
        title="CRM tickets",
        version=VERSION,
        settings=settings,
        routers=[*routers, ops_router(SERVICE)],
        lifespan=lifespan,
    )
    app.state.tickets = tickets
    app.state.scheduler = scheduler
    return app
