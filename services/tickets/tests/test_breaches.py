"""SLA breaches: recorded once when the clock passes the due time, after a restart too.

The clock is the service's injected one; the tests move it and never sleep past a
due time. Real PostgreSQL, real broker, the scheduler running inside the app.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
from fastapi import FastAPI
from sqlalchemy import func, select

from libs.events.kafka import KafkaSettings, service_topic
from libs.events.store import events
from services.tickets.handlers.breach_scheduler import BreachScheduler
from services.tickets.settings import Settings
from services.tickets.tests.conftest import Api, MovableClock, eventually, tickets_app
from services.tickets.tests.test_api import STANDARD_POLICY
from services.tickets.tests.test_events import read_topic

BREACH = "crm.tickets.sla_breached.v1"


async def breaches(app: FastAPI, ticket_id: str) -> list[dict[str, object]]:
    engine = app.state.tickets.engine
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(events.c.data).where(events.c.stream_id == ticket_id, events.c.type == BREACH)
        )
        return [dict(r[0]) for r in rows]


async def opened_ticket(api: Api) -> str:
    assert (await api.put("/api/v1/sla-policies/default", STANDARD_POLICY)).status_code == 200
    customer = await api.register()
    return str((await api.open(customer))["id"])


async def test_no_breach_before_the_due_time_and_one_just_after(
    api: Api, app: FastAPI, clock: MovableClock
) -> None:
    ticket = await opened_ticket(api)
    scheduler: BreachScheduler = app.state.scheduler

    clock.advance(timedelta(minutes=59, seconds=59))
    assert await scheduler.tick() == 0
    assert await breaches(app, ticket) == []

    clock.advance(timedelta(seconds=2))

    async def recorded() -> bool:
        return len(await breaches(app, ticket)) == 1

    await eventually(recorded, timeout=10)  # the app's own scheduler, every 50 ms
    [breach] = await breaches(app, ticket)
    assert (breach["target"], breach["due_at"]) == ("first_response", "2026-12-07T03:00:00Z")
    view = (await api.get(f"/api/v1/tickets/{ticket}")).json()
    assert view["breached"] == ["first_response"]
    assert view["sla"]["targets"]["first_response"]["outcome"] == "breached"
    listed = (await api.get("/api/v1/tickets", breached="true")).json()["items"]
    assert [t["id"] for t in listed] == [ticket]


async def test_a_breach_is_published_once_even_when_schedulers_race(
    api: Api, app: FastAPI, clock: MovableClock, kafka: KafkaSettings
) -> None:
    ticket = await opened_ticket(api)
    clock.advance(timedelta(hours=2))
    rival = BreachScheduler(app.state.tickets)

    await asyncio.gather(rival.tick(), rival.tick(), app.state.scheduler.tick())
    await asyncio.gather(rival.tick(), app.state.scheduler.tick())

    assert len(await breaches(app, ticket)) == 1
    published = await read_topic(
        kafka, lambda seen: any(p.type == BREACH for p in seen), service_topic("tickets")
    )
    # Delivery is at least once: a relay retry may repeat a message, never a new event.
    assert len({p.headers["ce_id"] for p in published if p.type == BREACH}) == 1


async def test_a_breach_due_while_the_service_was_down_is_recorded_once_after_the_restart(
    settings: Settings, clock: MovableClock, contacts_app: FastAPI
) -> None:
    first = tickets_app(settings, clock, contacts_app)
    async with first.router.lifespan_context(first), serving(first, contacts_app, settings) as api:
        ticket = await opened_ticket(api)
    clock.advance(timedelta(hours=3))  # the due time passes while nothing runs

    for _ in range(2):  # started again, twice: one breach, whatever the restarts
        again = tickets_app(settings, clock, contacts_app)
        async with again.router.lifespan_context(again):

            async def recorded(app: FastAPI = again) -> bool:
                return len(await breaches(app, ticket)) >= 1

            await eventually(recorded, timeout=10)
            await again.state.scheduler.tick()
    assert len(await breaches(again, ticket)) == 1


@contextlib.asynccontextmanager
async def serving(app: FastAPI, contacts_app: FastAPI, settings: Settings) -> AsyncIterator[Api]:
    async with (
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=contacts_app), base_url="http://contacts"
        ) as contacts,
    ):
        yield Api(client, contacts, settings)


async def test_an_answered_ticket_is_not_breached_and_leaves_the_due_list(
    api: Api, app: FastAPI, clock: MovableClock
) -> None:
    ticket = await opened_ticket(api)
    reply = await api.post(f"/api/v1/tickets/{ticket}/replies", {"body": "我们马上处理"})
    assert reply.status_code == 200
    await api.post(f"/api/v1/tickets/{ticket}/status", {"status": "pending"})
    clock.advance(timedelta(days=30))

    assert await app.state.scheduler.tick() == 0
    assert await breaches(app, ticket) == []
    engine = app.state.tickets.engine
    async with engine.connect() as conn:
        from services.tickets.read_model.ticket_list import tickets

        due = await conn.scalar(select(func.count()).where(tickets.c.next_due_at.is_not(None)))
    assert due == 0


async def test_the_metrics_count_breaches(api: Api, app: FastAPI, clock: MovableClock) -> None:
    ticket = await opened_ticket(api)
    clock.advance(timedelta(hours=2))
    await app.state.scheduler.tick()
    assert await breaches(app, ticket)

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as client:
        text = (await client.get("/metrics")).text
    assert 'crm_sla_breaches_total{priority="normal",target="first_response"}' in text
