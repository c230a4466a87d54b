"""A projection rebuild started over HTTP, run beside the API in this process.

The same code path as ``crm rebuild <projection>`` (:func:`libs.events.projection.rebuild`
with the service's declared factory and catalogue): a new generation fills from the
earliest offsets while the active one keeps serving, and is swapped in only if it
passed the rebuild's checks. One at a time per projection: a second start while one
runs is refused (409), since two rebuilds would fill the same next generation.
Every service with a rebuildable projection holds one :class:`Rebuilds` per projection
(``libs.platform.ops``).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from libs.events.catalog import EventCatalog
from libs.events.kafka import KafkaSettings
from libs.events.projection import ProjectionFactory, RebuildProgress, RebuildRefused, rebuild

log = logging.getLogger(__name__)

PROGRESS_EVERY_SECONDS = 1.0


class RebuildAlreadyRunning(Exception):
    def __init__(self, running: RebuildJob) -> None:
        self.running = running
        super().__init__(f"rebuild {running.id} of {running.projection} is still running")


@dataclass
class RebuildJob:
    id: str
    projection: str
    started_at: datetime
    # running, activated (the new generation serves), refused (checks failed, the old
    # generation still serves) or failed (an error stopped it).
    state: str = "running"
    progress: RebuildProgress | None = None
    generation: int | None = None
    finished_at: datetime | None = None
    reasons: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        p = self.progress
        return {
            "id": self.id,
            "projection": self.projection,
            "state": self.state,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "generation": self.generation if self.generation else (p.generation if p else None),
            "read": p.read if p else 0,
            "target": p.target if p else None,
            "dead_lettered": p.dead_lettered if p else 0,
            "reasons": self.reasons,
        }


class Rebuilds:
    """The rebuilds this process started: the running one and the last finished."""

    def __init__(
        self,
        projection: str,
        factory: ProjectionFactory,
        engine: AsyncEngine,
        kafka: KafkaSettings,
        catalog: EventCatalog,
    ) -> None:
        self.projection = projection
        self.factory = factory
        self.engine = engine
        self.kafka = kafka
        self.catalog = catalog
        self.latest: RebuildJob | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> RebuildJob:
        if self.latest is not None and self.latest.state == "running":
            raise RebuildAlreadyRunning(self.latest)
        job = RebuildJob(uuid.uuid4().hex, self.projection, datetime.now(UTC))
        self.latest = job
        self._task = asyncio.create_task(self._run(job), name=f"{self.projection}-rebuild")
        return job

    def find(self, job_id: str) -> RebuildJob | None:
        return self.latest if self.latest is not None and self.latest.id == job_id else None

    async def _run(self, job: RebuildJob) -> None:
        def record(progress: RebuildProgress) -> None:
            job.progress = progress

        try:
            job.generation = await rebuild(
                self.factory,
                self.engine,
                self.kafka,
                self.catalog,
                on_progress=record,
                progress_every_seconds=PROGRESS_EVERY_SECONDS,
            )
            job.state = "activated"
        except RebuildRefused as refused:
            job.progress = refused.progress
            job.state, job.reasons = "refused", refused.reasons
        except Exception as exc:  # shown to the operator; the old generation still serves
            log.exception("%s: rebuild %s failed", self.projection, job.id)
            job.state, job.reasons = "failed", [f"{type(exc).__name__}: {exc}"[:400]]
        finally:
            job.finished_at = datetime.now(UTC)

    async def stop(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
