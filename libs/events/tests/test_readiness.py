"""/livez and /readyz (issue 15): ready only once the database answers and every
projector the service runs has joined its consumer group."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI
from prometheus_client import REGISTRY

from libs.events.consumer import EventConsumer
from libs.events.kafka import KafkaSettings
from libs.events.projection import ProjectionRunner
from libs.events.store import EventStore
from libs.events.tests.conftest import eventually
from libs.events.tests.sample import VisitTotals, catalog
from libs.events.tests.test_projection import publish_visits, store  # noqa: F401
from libs.platform.app import create_service_app
from libs.platform.settings import ServiceSettings


def client_of(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://svc")


async def test_ready_only_once_the_projector_has_joined_its_group(
    store: EventStore, kafka: KafkaSettings, pg_url: str, unique: str  # noqa: F811
) -> None:
    topic = f"crm.sample.{unique}"
    await publish_visits(store, kafka, topic, 5)
    projection = VisitTotals(topics=(topic,))
    may_start = asyncio.Event()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runner = ProjectionRunner(projection, store.engine, kafka, catalog)
        stop = asyncio.Event()

        async def run_when_allowed() -> None:
            await may_start.wait()
            await runner.run(stop)

        task = asyncio.create_task(run_when_allowed())
        try:
            yield
        finally:
            stop.set()
            may_start.set()  # a failed assertion must not leave it waiting
            await task

    app = create_service_app(
        title="readiness", version="1", settings=ServiceSettings(database_url=pg_url),
        routers=[], lifespan=lifespan,
    )
    async with app.router.lifespan_context(app), client_of(app) as client:
        assert (await client.get("/livez")).status_code == 200
        starting = await client.get("/readyz")
        assert starting.status_code == 503
        assert starting.json()["consumers"] == {"status": "starting"}
        assert starting.json()["database"]["status"] == "up"

        may_start.set()

        async def ready() -> bool:
            return (await client.get("/readyz")).status_code == 200

        await eventually(ready, timeout=30)
        body = (await client.get("/readyz")).json()
        assert body["consumers"]["groups"] == {projection.key: "consuming"}
        # Counted from the start, so a panel shows 0 rather than "No data".
        labels = {"group": projection.key, "topic": topic}
        assert REGISTRY.get_sample_value("crm_dead_lettered_total", labels) == 0
        assert REGISTRY.get_sample_value("crm_handler_failures_total", labels) == 0


async def test_not_ready_while_the_database_does_not_answer() -> None:
    settings = ServiceSettings(database_url="postgresql://postgres@127.0.0.1:1/nowhere")
    app = create_service_app(title="readiness", version="1", settings=settings, routers=[])

    async with app.router.lifespan_context(app), client_of(app) as client:
        live = await client.get("/livez")
        ready = await client.get("/readyz")

    assert live.status_code == 200
    assert ready.status_code == 503
    assert ready.json()["database"]["status"] == "down"
    assert ready.json()["consumers"] == {"status": "ok", "groups": {}}


async def test_a_consumer_stopped_while_joining_its_group_stops_cleanly(
    kafka: KafkaSettings, unique: str
) -> None:
    """A service shut down right after it started (a test's app, a crash loop) stops
    while its consumer is still joining the group, without error."""
    consumer = EventConsumer(
        kafka,
        group_id=f"joining-{unique}",
        topics=[f"visits-{unique}"],
        catalog=catalog,
        handle_batch=lambda events, progress: asyncio.sleep(0),
    )
    stop = asyncio.Event()
    running = asyncio.create_task(consumer.run(stop))
    await asyncio.sleep(0.5)  # topics made, the group join under way

    stop.set()
    await asyncio.wait_for(running, timeout=10)

    # Stopped cleanly (the group left, nothing registered for readiness), without
    # first waiting for the assignment that consumer.start() waits for.
    assert consumer.consumer is None
    assert running.exception() is None
