"""The contacts service process: ``uvicorn --factory services.contacts.app:create_app``.

The only place that wires things together: settings -> engine -> event store (with
the personal data policy) -> handlers' dependencies -> router, and what runs beside the
HTTP server (``libs.platform.runtime``): the outbox relay, the import jobs and planner
upkeep.
"""

from __future__ import annotations

from fastapi import FastAPI

from libs.platform.app import create_service_app
from libs.platform.db import create_engine
from libs.platform.ops import ops_router
from libs.platform.relay import service_relay
from libs.platform.runtime import Job, ServiceRuntime, statistics
from services.contacts.api import routers
from services.contacts.handlers import import_jobs
from services.contacts.handlers.customers import SERVICE, Contacts
from services.contacts.migrations import FOLDER as MIGRATIONS
from services.contacts.service import SERVICE as DECLARATION
from services.contacts.settings import Settings

VERSION = "0.1.0"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    engine = create_engine(settings.database_url)
    relay = service_relay(DECLARATION, settings, engine)
    store = relay.store
    contacts = Contacts(
        store=store,
        phone_region=settings.phone_default_region,
        import_batch_size=settings.import_batch_size,
        on_append=relay.wake,
    )
    imports = import_jobs.ImportJobs(
        contacts,
        poll_seconds=settings.import_jobs_poll_seconds,
        stale_after_seconds=settings.import_jobs_stale_seconds,
    )

    jobs = [statistics(engine, SERVICE)]
    if settings.import_jobs_run:
        # The running import stops after its current batch and is queued again; one cut
        # short stays "running" until another runner sees it is stale.
        jobs.append(Job("contacts-import-jobs", imports.run))
    runtime = ServiceRuntime(SERVICE, engine, settings.kafka(), MIGRATIONS, relay=relay, jobs=jobs)

    app = create_service_app(
        title="CRM contacts",
        version=VERSION,
        settings=settings,
        routers=[*routers, ops_router(SERVICE)],
        lifespan=runtime.lifespan,
    )
    app.state.contacts = contacts
    app.state.import_jobs = imports
    app.state.ops = runtime.ops
    return app
