"""The pipeline service process: ``uvicorn --factory services.pipeline.app:create_app``.

The only place that wires things together: settings -> engine -> event store (with
the pipeline's personal data policy) -> the customers it knows (a projection of the
contacts topic, with contacts over HTTP behind it) -> handlers -> router. The
lifespan creates the tables and runs the outbox relay, the customers projection and
the follow-up requests of the alerts topic beside the HTTP server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import httpx
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from libs.events.catalog.contacts import catalog as contacts_catalog
from libs.events.catalog.pipeline import PERSONAL_DATA, catalog
from libs.events.outbox import OutboxRelay
from libs.events.projection import ProjectionRunner
from libs.events.store import EventStore
from libs.platform.app import create_service_app
from libs.platform.background import keep_running, stop_all
from libs.platform.db import create_engine
from libs.platform.migrations import prepare_schema
from libs.platform.ops import OpsBoard, WatchedProjection, ops_router
from libs.platform.planner_statistics import keep_statistics_fresh
from libs.platform.relay import outbox_relay as platform_relay
from services.pipeline.api import routers
from services.pipeline.handlers import SERVICE, SOURCE, CustomerDirectory, Pipeline
from services.pipeline.handlers import leads as lead_handlers
from services.pipeline.handlers.follow_ups import ALERTS_SOURCES, FollowUpRequests
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
    return platform_relay(
        settings,
        EventStore(engine, personal_data=PERSONAL_DATA),
        service=SERVICE,
        source=SOURCE,
        catalog=catalog,
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
    # Follow-up tasks the alerts service asks for (crm.alerts.events).
    follow_ups = ProjectionRunner(
        FollowUpRequests(pipeline, customers), engine, settings.kafka(), ALERTS_SOURCES
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await prepare_schema(engine, MIGRATIONS)
        await runner.create_tables()  # the known-customers generation (rebuild path)
        await follow_ups.create_tables()
        app.state.ops = OpsBoard(
            SERVICE,
            settings.kafka(),
            outbox=engine,
            projections=[WatchedProjection.fixed(runner), WatchedProjection.fixed(follow_ups)],
        )
        stop = asyncio.Event()
        tasks = [
            asyncio.create_task(
                keep_running("pipeline relay", relay.run, stop, cleanup=relay.close),
                name="pipeline-relay",
            ),
            asyncio.create_task(
                keep_running("pipeline customers projection", runner.run, stop),
                name="pipeline-customers",
            ),
            asyncio.create_task(
                keep_running("pipeline follow-up requests", follow_ups.run, stop),
                name="pipeline-follow-ups",
            ),
            asyncio.create_task(keep_statistics_fresh(engine, stop), name="pipeline-statistics"),
        ]
        try:
            yield
        finally:
            stop.set()
            await stop_all("pipeline", tasks, timeout=STOP_SECONDS)
            await relay.close()
            await client.aclose()
            await engine.dispose()

    app = create_service_app(
        title="CRM pipeline",
        version=VERSION,
        settings=settings,
        routers=[*routers, ops_router(SERVICE)],
        lifespan=lifespan,
    )
    app.state.pipeline = pipeline
    app.state.customers = runner
    app.state.follow_ups = follow_ups
    return app
