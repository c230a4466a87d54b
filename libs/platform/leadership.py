"""One active holder of a role per database, among every process of a service.

A service run in several worker processes serves HTTP in all of them, but some work
must run in one only: the outbox relay (two would publish an event twice and could
interleave a stream's events), a projector. On PostgreSQL the role is a session
advisory lock; on SQLite, an exclusive ``flock`` on a file beside the database. Either
way the operating system or the server frees it when its holder dies, and a standby
takes over within a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from libs.platform.db import is_postgres

# How often a standby tries again: how long a role stays vacant after its holder died.
RETRY_SECONDS = 1.0


class ExclusiveFile:
    """A lock on a file that one open of it holds at a time, in this process or any
    other (``flock`` locks belong to the open file, not to the process)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


class Leadership:
    """Holds the role ``name`` on ``engine``'s database while this process has it."""

    def __init__(self, engine: AsyncEngine, name: str) -> None:
        self.engine = engine
        self.name = name
        self._conn: AsyncConnection | None = None
        self._file: ExclusiveFile | None = None

    async def acquire(self, stop: asyncio.Event) -> bool:
        """Wait until this process holds the role (True) or ``stop`` is set (False)."""
        while not stop.is_set():
            if await self.try_acquire():
                return True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=RETRY_SECONDS)
        return False

    async def release(self) -> None:
        if self._conn is not None:
            # The lock belongs to the session; a pooled connection would keep it.
            await self._conn.execute(text("SELECT pg_advisory_unlock_all()"))
            await self._conn.commit()
            await self._conn.close()
            self._conn = None
        if self._file is not None:
            self._file.release()
            self._file = None

    async def try_acquire(self) -> bool:
        """Take the role if it is free; never waits."""
        if is_postgres(self.engine):
            conn = await self.engine.connect()
            got = await conn.scalar(
                text("SELECT pg_try_advisory_lock(hashtext(:k))"), {"k": self.name}
            )
            await conn.commit()
            if got:
                self._conn = conn
                return True
            await conn.close()
            return False
        path = lock_file(self.engine, self.name)
        if path is None:
            return True  # an in-memory database lives in one process only
        candidate = ExclusiveFile(path)
        if candidate.try_acquire():
            self._file = candidate
            return True
        return False


def lock_file(engine: AsyncEngine, name: str) -> Path | None:
    """``var/contacts.db`` -> ``var/contacts.db.<name>.lock`` (None: in memory)."""
    database = make_url(str(engine.url)).database
    if not database or database == ":memory:":
        return None
    return Path(f"{database}.{re.sub(r'[^A-Za-z0-9_.-]+', '-', name)}.lock")


@contextlib.asynccontextmanager
async def exclusively(engine: AsyncEngine, name: str) -> AsyncIterator[None]:
    """The block runs in one process at a time (workers starting together)."""
    leadership = Leadership(engine, name)
    await leadership.acquire(asyncio.Event())
    try:
        yield
    finally:
        await leadership.release()


async def while_leading(
    engine: AsyncEngine,
    name: str,
    stop: asyncio.Event,
    work: Callable[[asyncio.Event], Awaitable[None]],
) -> None:
    """Run ``work(stop)`` once this process holds the role, until ``stop`` is set."""
    leadership = Leadership(engine, name)
    if not await leadership.acquire(stop):
        return
    try:
        await work(stop)
    finally:
        await leadership.release()
