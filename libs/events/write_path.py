"""The write path every service shares: load, decide, append, and decide again on a race.

A handler reads its aggregate's stream in a transaction, folds it, asks the pure domain
for new events at ``now`` from the injected clock, and appends them at the version it
read, with its read-model rows and the outbox, all or nothing (docs/ARCHITECTURE.md).
What that needs is here, once (decision 0091):

* ``HandlerContext``: the dependencies every service's handlers take (the store, the
  clock, the relay's wake-up); a service subclasses it with what only it needs;
* ``RetryPolicy``: run one attempt (one transaction) again, after a jittered pause,
  when it lost a race: another writer appended first (a version conflict), took a
  unique key first, or the database chose it as a deadlock or serialisation victim
  (or, on SQLite, kept it waiting past the busy timeout);
* ``StaleVersion`` (412) and ``Busy`` (409): the two ways a write ends on a race.

Without If-Match a lost race is decided again on the fresher state (``attempts`` times,
then ``Busy``); with it the caller decided on a version it saw, so a version conflict is
a ``StaleVersion`` at once, never a silent overwrite.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field
from datetime import UTC, datetime
from types import EllipsisType
from typing import Any, ClassVar, TypeVar

from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from libs.events import metrics
from libs.events.catalog import DomainEvent
from libs.events.store import ConcurrencyConflict, EventStore, NewEvent
from libs.platform.errors import Conflict, PreconditionFailed
from libs.platform.request_ids import current_correlation_id

log = logging.getLogger(__name__)

T = TypeVar("T")

# PostgreSQL's SQLSTATEs for a transaction chosen as a deadlock victim, refused for
# serialisation, or holding a unique key another transaction took first.
DEADLOCK = "40P01"
SERIALIZATION_FAILURE = "40001"
UNIQUE_VIOLATION = "23505"


class StaleVersion(PreconditionFailed):
    """If-Match named a version the stream is no longer (or never was) at.

    ``subject`` names the stream in the detail ("customer c-1", "ticket t-1"); ``members``
    go into the problem beside it (``customer_id``), and ``current_version`` when known.
    """

    def __init__(
        self, subject: str, expected: int, current: int | None = None, **members: Any
    ) -> None:
        if current is None:  # lost a race at append time: only "moved on" is known
            super().__init__(f"{subject} changed since version {expected}", **members)
        else:
            super().__init__(
                f"{subject} is at version {current}, not {expected}",
                **members,
                current_version=current,
            )


class Busy(Conflict):
    """Other writers kept changing the stream while this command was decided."""

    def __init__(self, subject: str, **members: Any) -> None:
        super().__init__(f"{subject} changed concurrently; try again", **members)


@dataclass(frozen=True, slots=True)
class Subject:
    """How the problems of a write name its stream: the words and the members."""

    words: str
    members: Mapping[str, Any] = field(default_factory=dict)

    def stale(self, expected: int, current: int | None = None) -> StaleVersion:
        return StaleVersion(self.words, expected, current, **self.members)

    def busy(self) -> Busy:
        return Busy(self.words, **self.members)


def race_of(exc: BaseException) -> str | None:
    """What race ``exc`` reports ("version", "unique key", "deadlock", ...); None when it
    is a fault, not a race."""
    if isinstance(exc, ConcurrencyConflict):
        return "version"
    if not isinstance(exc, DBAPIError):
        return None
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if sqlstate == DEADLOCK:
        return "deadlock"
    if sqlstate == SERIALIZATION_FAILURE:
        return "serialization failure"
    if isinstance(exc, IntegrityError) and (
        sqlstate == UNIQUE_VIOLATION or "UNIQUE constraint failed" in str(exc.orig)
    ):
        # A unique key of a read model (an external id) taken by a racing writer:
        # deciding again sees it.
        return "unique key"
    if isinstance(exc, OperationalError) and "database is locked" in str(exc.orig):
        return "database locked"
    return None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and after what pause a write that lost a race is decided again."""

    # None: as often as it takes (a change that commutes with every other one).
    attempts: int | None = 10
    # The n-th retry waits a random time up to ``pause_step * min(n, pause_steps)``:
    # jittered, so writers that collided once do not collide again in step.
    pause_step: float = 0.005
    pause_steps: int = 10
    jitter: Callable[[float, float], float] = random.uniform
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    def pause(self, retry: int) -> float:
        """The pause before retry number ``retry`` (1 for the first retry)."""
        return self.jitter(0, self.pause_step * min(retry, self.pause_steps))

    async def run(
        self, subject: Subject, expected: int | None, attempt: Callable[[], Awaitable[T]]
    ) -> T:
        """``attempt`` (one transaction), again while it loses races; then ``Busy``.

        With ``expected`` (If-Match) a version conflict is a ``StaleVersion`` at once.
        """
        tried = 0
        while self.attempts is None or tried < self.attempts:
            if tried:
                await self.sleep(self.pause(tried))
            tried += 1
            try:
                return await attempt()
            except (ConcurrencyConflict, DBAPIError) as exc:
                race = race_of(exc)
                if race is None:
                    raise
                if race == "version" and expected is not None:
                    # The caller decided on ``expected``; someone else moved past it.
                    raise subject.stale(expected) from None
                log.info("retrying %s after a %s race", subject.words, race)
        raise subject.busy()


@dataclass
class HandlerContext:
    """What a service's handlers need, wired once by its ``create_app`` (tests wire
    their own); a service subclasses it with what only it needs and names itself in
    ``service`` (the metrics' label)."""

    service: ClassVar[str]

    store: EventStore
    _: KW_ONLY
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    # Called after every commit that appended events (the relay's wake-up).
    on_append: Callable[[], None] = field(default=lambda: None)
    retry: RetryPolicy = field(default=RetryPolicy())

    @property
    def engine(self) -> AsyncEngine:
        return self.store.engine

    def appended(self, count: int) -> None:
        if count:
            metrics.EVENTS_APPENDED.labels(self.service).inc(count)
            self.on_append()

    def subject(self, stream_id: str) -> Subject:
        """How this service's problems name ``stream_id``; a service may say more."""
        return Subject(stream_id)

    def check_version(self, stream_id: str, expected: int | None, current: int) -> None:
        """If-Match: the caller decided on ``expected``; another version is a 412."""
        if expected is not None and expected != current:
            raise self.subject(stream_id).stale(expected, current)

    async def retrying(
        self,
        stream_id: str,
        expected: int | None,
        attempt: Callable[[], Awaitable[T]],
        *,
        policy: RetryPolicy | None = None,
    ) -> T:
        """Run ``attempt`` (one transaction) again when it lost a race."""
        return await (policy or self.retry).run(self.subject(stream_id), expected, attempt)


def new_events(
    events: Sequence[DomainEvent],
    partition_key: str,
    now: datetime,
    *,
    caused_by: str | None = None,
    correlation_id: str | EllipsisType | None = ...,
) -> list[NewEvent]:
    """Events to append, stamped with the request's correlation id (``correlation_id``
    to stamp another: a reaction's cause's); ``caused_by`` names the event that made
    these happen."""
    correlation = current_correlation_id() if correlation_id is ... else correlation_id
    return [
        NewEvent.from_domain(
            e,
            partition_key=partition_key,
            occurred_at=now,
            correlation_id=correlation,
            causation_id=caused_by,
        )
        for e in events
    ]
