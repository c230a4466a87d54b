"""Work a service runs beside its HTTP server: relays, projectors, sweeps, schedules.

The three kinds of loop every service runs, written once (beside ``while_leading``,
which decides *whether* a process runs one): a long-running task restarted after a
failure, a round repeated every N seconds, and a bounded stop. Services declare their
work with ``libs.platform.runtime``, which runs it through these.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

log = logging.getLogger(__name__)

# A broker or database gone for minutes is retried at most this far apart.
MAX_BACKOFF_SECONDS = 30.0


async def pause(stop: asyncio.Event, seconds: float) -> None:
    """Wait ``seconds``, or less if ``stop`` is set meanwhile."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


@dataclass(slots=True)
class Supervision:
    """What a status page shows of a supervised loop: whether it runs now, how often
    it was restarted, and the last failure."""

    running: bool = False
    restarts: int = 0
    last_error: str | None = None


async def keep_running(
    name: str,
    run: Callable[[asyncio.Event], Awaitable[None]],
    stop: asyncio.Event,
    *,
    cleanup: Callable[[], Awaitable[None]] | None = None,
    max_backoff: float = MAX_BACKOFF_SECONDS,
    supervision: Supervision | None = None,
) -> None:
    """Run ``run(stop)`` until ``stop`` is set. A broker outage or a database restart
    must not end it for the life of the process: log the failure, call ``cleanup``
    (e.g. close a producer that may be half open), back off, start again. A failure
    after a long healthy run starts the backoff afresh."""
    watched = supervision if supervision is not None else Supervision()
    loop = asyncio.get_running_loop()
    backoff = 0.5
    while not stop.is_set():
        started = loop.time()
        watched.running = True
        try:
            await run(stop)
        except Exception as exc:
            watched.running = False
            watched.restarts += 1
            watched.last_error = f"{type(exc).__name__}: {exc}"
            if loop.time() - started > max_backoff:
                backoff = 0.5  # it ran fine for a while: this is a new failure
            log.exception("%s failed; restarting in %.1fs", name, backoff)
            if cleanup is not None:
                try:
                    await cleanup()
                except Exception:
                    log.exception("%s: cleanup after a failure failed", name)
            await pause(stop, backoff)
            backoff = min(backoff * 2, max_backoff)
        finally:
            watched.running = False


async def every(
    name: str,
    seconds: float,
    work: Callable[[], Awaitable[object]],
    stop: asyncio.Event,
    *,
    at_start: bool = False,
) -> None:
    """``work()`` every ``seconds`` until ``stop`` is set (first at start, or after the
    first interval); a failed round is logged and the next one tries again."""
    if not at_start:
        await pause(stop, seconds)
    while not stop.is_set():
        try:
            await work()
        except Exception:
            log.exception("%s failed; trying again in %.0fs", name, seconds)
        await pause(stop, seconds)


async def stop_all(owner: str, tasks: Sequence[asyncio.Task[None]], *, timeout: float) -> None:
    """After ``stop`` was set: give the tasks ``timeout`` to finish the work in hand
    (a relay's batch, a projector's), then cancel what is left."""
    if not tasks:
        return
    _, pending = await asyncio.wait(tasks, timeout=timeout)
    for task in pending:
        log.warning("%s: %s did not stop in %.0fs; cancelled", owner, task.get_name(), timeout)
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
