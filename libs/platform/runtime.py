"""The runtime every service runs in: what it does beside its HTTP server, started and
stopped one way.

A service *declares* its work in its ``app.py`` (its outbox relay, the projections it
keeps, its periodic and leader-only jobs); :class:`ServiceRuntime` owns the rest:
the schema check before serving (docs/decisions/0021), each projection's tables, the
ops board, one task per job restarted with backoff after a failure, a bounded stop
(a relay's or a projector's batch in hand is finished, what hangs is cancelled) and
closing the relay and the engine. No service writes a loop that restarts a task.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from libs.events import readiness
from libs.events.kafka import KafkaSettings
from libs.events.outbox import OutboxRelay
from libs.events.projection import LiveProjection, ProjectionRunner
from libs.platform.background import Supervision, every, keep_running, stop_all
from libs.platform.leadership import exclusively, while_leading
from libs.platform.migrations import prepare_schema
from libs.platform.ops import OpsBoard, WatchedProjection
from libs.platform.planner_statistics import keep_statistics_fresh

# Long enough for a relay or a projector to finish the batch in hand.
STOP_SECONDS = 10.0

Run = Callable[[asyncio.Event], Coroutine[Any, Any, None]]


@dataclass(frozen=True, slots=True)
class Job:
    """One piece of work beside the HTTP server: ``run(stop)`` until ``stop`` is set."""

    name: str
    run: Run


def continuous(
    name: str,
    run: Run,
    *,
    cleanup: Callable[[], Awaitable[None]] | None = None,
    supervision: Supervision | None = None,
) -> Job:
    """A loop that must outlive a broker outage or a database restart: restarted with
    backoff after a failure (``cleanup`` first, e.g. a half-open producer closed)."""
    return Job(name, partial(_supervised, name, run, cleanup, supervision))


def periodic(
    name: str, seconds: float, round_: Callable[[], Awaitable[object]], *, at_start: bool = False
) -> Job:
    """A round every ``seconds`` (first at start, or after one interval); a failed round
    is logged and the next one tries again."""

    async def run(stop: asyncio.Event) -> None:
        await every(name, seconds, round_, stop, at_start=at_start)

    return Job(name, run)


def leading(engine: AsyncEngine, job: Job) -> Job:
    """``job`` in one process per database: the one that holds the lock named after it
    (the others wait, and take over when it stops)."""

    async def run(stop: asyncio.Event) -> None:
        await while_leading(engine, job.name, stop, job.run)

    return Job(job.name, run)


def statistics(engine: AsyncEngine, service: str) -> Job:
    """Planner statistics kept fresh (PostgreSQL), by one worker process for all."""
    return leading(engine, Job(f"{service}-statistics", partial(keep_statistics_fresh, engine)))


@dataclass(frozen=True, slots=True)
class Projected:
    """A projection the service keeps: its tables made before serving, watched by ops,
    and consumed here when ``run`` (settings may give that to other processes);
    ``leader``: by one worker process per database."""

    projection: ProjectionRunner | LiveProjection
    run: bool = True
    leader: bool = False
    supervision: Supervision | None = None

    @property
    def name(self) -> str:
        projection = self.projection
        if isinstance(projection, LiveProjection):
            return projection.name
        return projection.projection.name

    def watched(self) -> WatchedProjection:
        if isinstance(self.projection, LiveProjection):
            return WatchedProjection.live(self.projection)
        return WatchedProjection.fixed(self.projection)

    async def prepare(self) -> None:
        projection = self.projection
        if isinstance(projection, ProjectionRunner):
            await projection.create_tables()
            return
        # Workers starting together would race to create the generation's tables.
        async with exclusively(projection.engine, f"{projection.name}-tables"):
            current = await projection.current()
            runner = ProjectionRunner(
                current, projection.engine, projection.kafka, projection.catalog
            )
            await runner.create_tables()

    def job(self, engine: AsyncEngine, service: str) -> Job:
        name = self.name if self.name.startswith(service) else f"{service}-{self.name}"
        job = continuous(name, self.projection.run, supervision=self.supervision)
        return leading(engine, job) if self.leader else job


class ServiceRuntime:
    """What one service runs beside its HTTP server, and the lifespan that runs it."""

    def __init__(
        self,
        service: str,
        engine: AsyncEngine,
        kafka: KafkaSettings,
        migrations: Path,
        *,
        relay: OutboxRelay | None = None,
        projections: Sequence[Projected] = (),
        jobs: Sequence[Job] = (),
        prepare: Sequence[Callable[[], Awaitable[None]]] = (),
        close: Sequence[Callable[[], Awaitable[None]]] = (),
        stop_seconds: float = STOP_SECONDS,
    ) -> None:
        self.service = service
        self.engine = engine
        self.kafka = kafka
        self.migrations = migrations
        self.relay = relay
        self.projections = tuple(projections)
        self.jobs = tuple(jobs)
        self.prepare = tuple(prepare)
        self.close = tuple(close)
        self.stop_seconds = stop_seconds
        # Set when the service stops: a long round (a sweep's batches) may look at it.
        self.stopping = asyncio.Event()
        self.ops = OpsBoard(
            service,
            kafka,
            outbox=engine if relay is not None else None,
            projections=[p.watched() for p in self.projections],
        )

    def all_jobs(self) -> list[Job]:
        jobs: list[Job] = []
        if self.relay is not None:
            relay = self.relay
            jobs.append(continuous(f"{self.service}-relay", relay.run, cleanup=relay.close))
        jobs.extend(p.job(self.engine, self.service) for p in self.projections if p.run)
        jobs.extend(self.jobs)
        return jobs

    @contextlib.asynccontextmanager
    async def lifespan(self, app: FastAPI) -> AsyncIterator[None]:
        await prepare_schema(self.engine, self.migrations)
        if any(p.run for p in self.projections):
            # Projections are built with the app, outside the lifespan's readiness
            # registry: /readyz must wait for them all the same.
            readiness.expect_consumers()
        for projected in self.projections:
            await projected.prepare()
        for step in self.prepare:
            await step()
        self.stopping = stop = asyncio.Event()
        tasks = [asyncio.create_task(job.run(stop), name=job.name) for job in self.all_jobs()]
        try:
            yield
        finally:
            stop.set()
            await self.ops.stop()
            await stop_all(self.service, tasks, timeout=self.stop_seconds)
            if self.relay is not None:
                await self.relay.close()
            for close in self.close:
                await close()
            await self.engine.dispose()


async def _supervised(
    name: str,
    run: Run,
    cleanup: Callable[[], Awaitable[None]] | None,
    supervision: Supervision | None,
    stop: asyncio.Event,
) -> None:
    await keep_running(name, run, stop, cleanup=cleanup, supervision=supervision)
