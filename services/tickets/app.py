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
from libs.events.kafka import service_topic
from libs.events.outbox import OutboxRelay
from libs.events.projection import LiveProjection, ProjectionRunner
from libs.events.store import EventStore
from libs.platform.app import create_service_app
from libs.platform.db import create_engine
from libs.platform.migrations import prepare_schema
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
    store = EventStore(engine, personal_data=PERSONAL_DATA)
    return OutboxRelay(
        store,
        settings.kafka(),
        service=SERVICE,
        topic=service_topic(SERVICE),
        source=SOURCE,
        schema_url=catalog.schema_url,
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
        stop = asyncio.Event()
        tasks = [asyncio.create_task(_keep_relaying(relay, stop), name="tickets-relay")]
        if settings.run_customer_projection:
            tasks.append(
                asyncio.create_task(_keep_projecting(customers, stop), name="tickets-customers")
            )
        if settings.run_sla_scheduler:
            tasks.append(asyncio.create_task(scheduler.run(stop), name="tickets-sla"))
        try:
            yield
        finally:
            stop.set()
            _, pending = await asyncio.wait(tasks, timeout=STOP_GRACE_SECONDS)
            for task in pending:
                log.warning("tickets: %s did not stop in time; cancelled", task.get_name())
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            await relay.close()
            await engine.dispose()

    app = create_service_app(
        title="CRM tickets",
        version=VERSION,
        settings=settings,
        routers=routers,
        lifespan=lifespan,
    )
    app.state.tickets = tickets
    app.state.scheduler = scheduler
    return app


async def _keep_projecting(customers: LiveProjection, stop: asyncio.Event) -> None:
    """A broker not up yet at start (``crm run`` starts everything at once) or gone for a
    while must not end the projection for good: /readyz would wait for it forever."""
    while not stop.is_set():
        try:
            await customers.run(stop)
        except Exception:
            log.exception("tickets: known-customers projection failed; restarting in 1s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=1.0)


async def _keep_relaying(relay: OutboxRelay, stop: asyncio.Event) -> None:
    """The relay retries broker outages itself; anything else must not end publishing."""
    while not stop.is_set():
        try:
            await relay.run(stop)
        except Exception:
            log.exception("outbox relay failed; restarting in 1s")
            await relay.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=1.0)
