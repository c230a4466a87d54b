"""The pipeline service process: ``uvicorn --factory services.pipeline.app:create_app``.

The only place that wires things together: settings -> engine -> event store (with
the pipeline's personal data policy) -> the customers it knows (a projection of the
contacts topic, with contacts over HTTP behind it) -> handlers -> router. The
lifespan creates the tables and runs the outbox relay and the customers projection
beside the HTTP server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from libs.events.catalog.contacts import catalog as contacts_catalog
from libs.events.catalog.pipeline import PERSONAL_DATA, catalog
from libs.events.kafka import service_topic
from libs.events.outbox import OutboxRelay
from libs.events.projection import ProjectionRunner
from libs.events.store import EventStore
from libs.platform.app import create_service_app
from libs.platform.db import create_engine
from libs.platform.migrations import prepare_schema
from libs.platform.planner_statistics import keep_statistics_fresh
from services.pipeline.api import routers
from services.pipeline.handlers import SERVICE, SOURCE, CustomerDirectory, Pipeline
from services.pipeline.handlers import leads as lead_handlers
from services.pipeline.migrations import FOLDER as MIGRATIONS
from services.pipeline.read_model.known_customers import KnownCustomers
from services.pipeline.settings import Settings

log = logging.getLogger(__name__)

VERSION = "0.1.0"
# Long enough for the relay and the projection to finish the batch in hand.
STOP_SECONDS = 10.0


def outbox_relay(settings: Settings, engine: AsyncEngine) -> OutboxRelay:
    """The store (with the personal data policy) and its relay: what serving and
    ``crm republish pipeline`` both publish through."""
    store = EventStore(engine, personal_data=PERSONAL_DATA)
    return OutboxRelay(
        store,
        settings.kafka(),
        service=SERVICE,
        topic=service_topic(SERVICE),
        source=SOURCE,
        schema_url=catalog.schema_url,
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    engine = create_engine(settings.database_url)
    relay = outbox_relay(settings, engine)
    customers = KnownCustomers()
    runner = ProjectionRunner(customers, engine, settings.kafka(), contacts_catalog)
    client = httpx.AsyncClient()
    pipeline = Pipeline(
        store=relay.store,
        directory=CustomerDirectory(customers, engine, settings.contacts_url or None, client),
        on_append=relay.wake,
    )

    async def forget_leads(conn: AsyncConnection, tenant_id: str, customer_id: str) -> None:
        await lead_handlers.forget_leads_of_customer(pipeline, conn, tenant_id, customer_id)

    customers.on_erased = forget_leads

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await prepare_schema(engine, MIGRATIONS)
        await runner.create_tables()  # the known-customers generation (rebuild path)
        stop = asyncio.Event()
        tasks = [
            asyncio.create_task(
                _keep_running("outbox relay", relay.run, stop, relay.close), name="pipeline-relay"
            ),
            asyncio.create_task(
                _keep_running("customers projection", runner.run, stop),
                name="pipeline-customers",
            ),
            asyncio.create_task(keep_statistics_fresh(engine, stop), name="pipeline-statistics"),
        ]
        try:
            yield
        finally:
            stop.set()
            _, pending = await asyncio.wait(tasks, timeout=STOP_SECONDS)
            for task in pending:
                log.warning("pipeline: %s did not stop in time; cancelled", task.get_name())
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            await relay.close()
            await client.aclose()
            await engine.dispose()

    app = create_service_app(
        title="CRM pipeline",
        version=VERSION,
        settings=settings,
        routers=routers,
        lifespan=lifespan,
    )
    app.state.pipeline = pipeline
    app.state.customers = runner
    return app


async def _keep_running(
    what: str,
    run: Callable[[asyncio.Event], Awaitable[None]],
    stop: asyncio.Event,
    after_failure: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """A broker or database outage must not end publishing or consuming for the life
    of the process: log it and start again."""
    backoff = 0.5
    while not stop.is_set():
        try:
            await run(stop)
        except Exception:
            log.exception("pipeline %s failed; restarting in %.1fs", what, backoff)
            if after_failure is not None:
                with contextlib.suppress(Exception):
                    await after_failure()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=backoff)
            backoff = min(backoff * 2, 30.0)
