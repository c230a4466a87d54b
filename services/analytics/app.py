"""The analytics service process: ``uvicorn --factory services.analytics.app:create_app``.

The only place that wires things together: settings -> engine -> event store ->
handlers' dependencies -> routers, and what runs beside the HTTP server
(``libs.platform.runtime``): the outbox relay (segment entries and exits), the
projector (a ``LiveProjection`` over the contacts, pipeline, tickets, loyalty and
alerts topics, so a rebuild's swap is followed; one worker process per database) and
the sweep that evaluates the segments again.
"""

from __future__ import annotations

from functools import partial

from fastapi import FastAPI

from libs.events.projection import LiveProjection
from libs.platform.app import create_service_app
from libs.platform.db import create_engine
from libs.platform.ops import ops_router
from libs.platform.relay import service_relay
from libs.platform.runtime import Projected, ServiceRuntime, periodic
from services.analytics.api import routers
from services.analytics.domain.sources import SOURCES
from services.analytics.handlers import SERVICE, Analytics
from services.analytics.handlers.segments import sweep
from services.analytics.migrations import FOLDER as MIGRATIONS
from services.analytics.read_model.projection import projection_factory
from services.analytics.service import SERVICE as DECLARATION
from services.analytics.settings import Settings

VERSION = "0.1.0"


def create_app(settings: Settings | None = None, analytics: Analytics | None = None) -> FastAPI:
    """``analytics`` lets tests inject a clock; it must use this settings' database."""
    settings = settings or Settings()
    engine = analytics.engine if analytics is not None else create_engine(settings.database_url)
    relay = service_relay(DECLARATION, settings, engine)
    if analytics is None:
        analytics = Analytics(store=relay.store)
    analytics.on_append = relay.wake
    wired = analytics

    projector = LiveProjection(
        projection_factory,
        engine,
        settings.kafka(),
        SOURCES,
        generation_check_seconds=settings.generation_check_seconds,
    )
    sweeping = periodic(
        "analytics-segment-sweep", settings.segment_sweep_seconds, partial(sweep, wired)
    )
    runtime = ServiceRuntime(
        SERVICE,
        engine,
        settings.kafka(),
        MIGRATIONS,
        relay=relay,
        projections=[Projected(projector, run=settings.run_projector, leader=True)],
        jobs=[sweeping] if settings.run_sweep else [],
    )

    app = create_service_app(
        title="CRM analytics",
        version=VERSION,
        settings=settings,
        routers=[*routers, ops_router(SERVICE)],
        lifespan=runtime.lifespan,
    )
    app.state.analytics = analytics
    app.state.projector = projector
    app.state.ops = runtime.ops
    return app
