"""The pipeline service process: ``uvicorn --factory services.pipeline.app:create_app``.

The only place that wires things together: settings -> engine -> event store (with
the pipeline's personal data policy) -> the customers it knows (a projection of the
contacts topic, with contacts over HTTP behind it) -> handlers -> router, and what
runs beside the HTTP server (``libs.platform.runtime``): the outbox relay, the
customers projection, the follow-up requests of the alerts topic and planner upkeep.
"""

from __future__ import annotations

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncConnection

from libs.events.catalog.contacts import catalog as contacts_catalog
from libs.events.projection import ProjectionRunner
from libs.platform.app import create_service_app
from libs.platform.db import create_engine
from libs.platform.ops import ops_router
from libs.platform.relay import service_relay
from libs.platform.runtime import Projected, ServiceRuntime, statistics
from services.pipeline.api import routers
from services.pipeline.handlers import SERVICE, CustomerDirectory, Pipeline
from services.pipeline.handlers import leads as lead_handlers
from services.pipeline.handlers import orders as order_handlers
from services.pipeline.handlers.follow_ups import ALERTS_SOURCES, FollowUpRequests
from services.pipeline.migrations import FOLDER as MIGRATIONS
from services.pipeline.read_model.known_customers import KnownCustomers
from services.pipeline.service import SERVICE as DECLARATION
from services.pipeline.settings import Settings

VERSION = "0.1.0"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    engine = create_engine(settings.database_url)
    relay = service_relay(DECLARATION, settings, engine)
    customers = KnownCustomers()
    runner = ProjectionRunner(customers, engine, settings.kafka(), contacts_catalog)
    pipeline = Pipeline(
        store=relay.store,
        directory=CustomerDirectory(customers, engine, settings.contacts_url or None),
        on_append=relay.wake,
    )

    async def forget_customer(conn: AsyncConnection, tenant_id: str, customer_id: str) -> None:
        await order_handlers.forget_customer(pipeline, conn, tenant_id, customer_id)
        await lead_handlers.forget_leads_of_customer(pipeline, conn, tenant_id, customer_id)

    customers.on_erased = forget_customer
    # Follow-up tasks the alerts service asks for (crm.alerts.events).
    follow_ups = ProjectionRunner(
        FollowUpRequests(pipeline, customers), engine, settings.kafka(), ALERTS_SOURCES
    )

    runtime = ServiceRuntime(
        SERVICE,
        engine,
        settings.kafka(),
        MIGRATIONS,
        relay=relay,
        projections=[Projected(runner), Projected(follow_ups)],
        jobs=[statistics(engine, SERVICE)],
        close=[pipeline.directory.aclose],
    )

    app = create_service_app(
        title="CRM pipeline",
        version=VERSION,
        settings=settings,
        routers=[*routers, ops_router(SERVICE)],
        lifespan=runtime.lifespan,
    )
    app.state.pipeline = pipeline
    app.state.customers = runner
    app.state.follow_ups = follow_ups
    app.state.ops = runtime.ops
    return app
