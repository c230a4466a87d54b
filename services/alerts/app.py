"""The alerts service process: ``uvicorn --factory services.alerts.app:create_app``.

The only place that wires things together: settings -> engine -> event store ->
handlers' dependencies -> router, and what runs beside the HTTP server
(``libs.platform.runtime``): the outbox relay, the churn projector (a consumer of the
contacts, pipeline, tickets and loyalty topics), the webhook dispatcher and delivery
worker, the sweep that assesses customers again as time passes, and the weekly
lists' publisher.
"""

from __future__ import annotations

import asyncio
from functools import partial

from fastapi import FastAPI

from libs.events.projection import ProjectionRunner
from libs.platform.app import create_service_app
from libs.platform.db import create_engine
from libs.platform.ops import ops_router
from libs.platform.relay import service_relay
from libs.platform.runtime import Job, Projected, ServiceRuntime, leading, periodic
from services.alerts.api import router
from services.alerts.domain.sources import SOURCES
from services.alerts.handlers import (
    SERVICE,
    Alerts,
    churn_metrics,
    past_rankings,
    publish_weekly_lists,
    sweep,
)
from services.alerts.migrations import FOLDER as MIGRATIONS
from services.alerts.notifications import app as notifications_app
from services.alerts.notifications.api import router as webhooks_router
from services.alerts.notifications.handlers.webhook_client import Resolve, resolve_host
from services.alerts.notifications.settings import NotificationSettings
from services.alerts.read_model import churn_facts
from services.alerts.read_model.projection import ChurnFacts
from services.alerts.service import SERVICE as DECLARATION
from services.alerts.settings import Settings

VERSION = "0.1.0"


def create_app(
    settings: Settings | None = None, alerts: Alerts | None = None, resolve: Resolve = resolve_host
) -> FastAPI:
    """Tests inject a clock (``alerts``, on this database) and webhooks' DNS (``resolve``)."""
    settings = settings or Settings()
    engine = alerts.engine if alerts is not None else create_engine(settings.database_url)
    relay = service_relay(DECLARATION, settings, engine)
    if alerts is None:
        alerts = Alerts(store=relay.store, context_seconds=settings.churn_context_seconds)
    alerts.on_append = relay.wake
    wired = alerts
    notifications, deliveries = notifications_app.wire(settings, alerts, resolve)

    projector = ProjectionRunner(ChurnFacts(wired), engine, settings.kafka(), SOURCES)
    projections = [Projected(projector, run=settings.run_projector)]
    if notifications.dispatcher is not None:
        projections.append(Projected(notifications.dispatcher))
    jobs = []
    if isinstance(settings, NotificationSettings) and settings.run_webhook_worker:
        jobs.append(Job("alerts-webhook-worker", deliveries.run))
    if settings.run_sweep:
        # At start too: what was never assessed (or is due since the last run) is ranked.
        jobs.append(
            periodic(
                "alerts-churn-sweep", settings.sweep_seconds, partial(sweep, wired), at_start=True
            )
        )
    if settings.run_past_rankings:
        scoring = periodic(
            "alerts-past-rankings",
            settings.past_rankings_seconds,
            partial(past_rankings.score_queued, engine, wired.clock),
            at_start=True,
        )

        async def score_past_rankings(stop: asyncio.Event) -> None:
            await past_rankings.requeue_running(engine)
            await scoring.run(stop)

        # One scorer per database: a job is scored once, and one left running by a
        # stopped process is queued again by the next leader.
        jobs.append(leading(engine, Job(scoring.name, score_past_rankings)))
    if settings.run_weekly:
        jobs.append(
            periodic(
                "alerts-weekly-lists",
                settings.weekly_check_seconds,
                partial(publish_weekly_lists, wired),
                at_start=True,
            )
        )

    async def gauge_levels() -> None:  # the gauge from the first scrape
        async with engine.connect() as conn:
            churn_metrics.set_levels(await churn_facts.customers_by_level(conn))

    runtime = ServiceRuntime(
        SERVICE,
        engine,
        settings.kafka(),
        MIGRATIONS,
        relay=relay,
        projections=projections,
        jobs=jobs,
        prepare=[gauge_levels],
    )

    app = create_service_app(
        title="CRM alerts",
        version=VERSION,
        settings=settings,
        routers=[router, webhooks_router, ops_router(SERVICE)],
        lifespan=runtime.lifespan,
    )
    app.state.alerts = alerts
    app.state.notifications = notifications
    app.state.webhook_worker = deliveries
    app.state.projector = projector
    app.state.ops = runtime.ops
    return app
