"""The contacts service process: ``uvicorn --factory services.contacts.app:create_app``.

The only place that wires things together: settings -> engine -> event store (with
the personal data policy) -> handlers' dependencies -> router; the lifespan
checks the schema (docs/decisions/0021) and runs the outbox relay beside the HTTP server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from functools import partial

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from libs.events.catalog.contacts import catalog
from libs.events.outbox import OutboxRelay
from libs.events.store import EventStore
from libs.platform.app import create_service_app
from libs.platform.background import keep_running
from libs.platform.db import create_engine
from libs.platform.leadership import while_leading
from libs.platform.migrations import prepare_schema
from libs.platform.ops import OpsBoard, ops_router
from libs.platform.planner_statistics import keep_statistics_fresh
from libs.platform.relay import outbox_relay as platform_relay
from services.contacts.api import routers
from services.contacts.handlers import import_jobs
from services.contacts.handlers.customers import PERSONAL_DATA, SERVICE, SOURCE, Contacts
from services.contacts.migrations import FOLDER as MIGRATIONS
from services.contacts.settings import Settings

log = logging.getLogger(__name__)

VERSION = "0.1.0"
# Long enough for the relay to finish the batch it is publishing.
RELAY_STOP_SECONDS = 10.0
# Long enough for an import to finish the batch it is writing.
IMPORT_STOP_SECONDS = 10.0


def outbox_relay(settings: Settings, engine: AsyncEngine) -> OutboxRelay:
    """The store (with the personal data policy) and its relay: what serving and
    ``crm republish contacts`` both publish through."""
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
    store = relay.store
    contacts = Contacts(
        store=store,
        phone_region=settings.phone_default_region,
        import_batch_size=settings.import_batch_size,
        on_append=relay.wake,
    )
    jobs = import_jobs.ImportJobs(
        contacts,
        poll_seconds=settings.import_jobs_poll_seconds,
        stale_after_seconds=settings.import_jobs_stale_seconds,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await prepare_schema(engine, MIGRATIONS)
        app.state.ops = OpsBoard(SERVICE, settings.kafka(), outbox=engine)
        stop = asyncio.Event()
        relaying = asyncio.create_task(
            keep_running("contacts relay", relay.run, stop, cleanup=relay.close),
            name="contacts-relay",
        )
        # One worker process analyses for all of them.
        analyse = partial(keep_statistics_fresh, engine)
        analysing = asyncio.create_task(
            while_leading(engine, "contacts-statistics", stop, analyse), name="contacts-statistics"
        )
        importing = (
            asyncio.create_task(jobs.run(stop), name="contacts-import-jobs")
            if settings.import_jobs_run
            else None
        )
        try:
            yield
        finally:
            stop.set()
            if importing is not None:
                # The running import stops after its current batch and is queued again.
                try:
                    await asyncio.wait_for(importing, timeout=IMPORT_STOP_SECONDS)
                except TimeoutError:
                    # Its job stays "running" until another runner sees it is stale.
                    log.warning("import runner did not stop in %.0fs", IMPORT_STOP_SECONDS)
            try:
                await asyncio.wait_for(relaying, timeout=RELAY_STOP_SECONDS)
            except TimeoutError:
                log.warning("outbox relay did not stop in %.0fs; cancelled", RELAY_STOP_SECONDS)
            await relay.close()
            analysing.cancel()  # it may be in the middle of an ANALYZE: nothing to keep
            with contextlib.suppress(asyncio.CancelledError):
                await analysing
            await engine.dispose()

    app = create_service_app(
        title="CRM contacts",
        version=VERSION,
        settings=settings,
        routers=[*routers, ops_router(SERVICE)],
        lifespan=lifespan,
    )
    app.state.contacts = contacts
    app.state.import_jobs = jobs
    return app
