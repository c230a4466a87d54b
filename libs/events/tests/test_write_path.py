"""The write path: which races a write is decided again after, how long it pauses, and
how it ends; then two writers racing on one stream, on PostgreSQL and on SQLite."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable

import pytest
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from libs.events.store import ConcurrencyConflict, EventStore
from libs.events.tests.sample import visit
from libs.events.write_path import (
    Busy,
    HandlerContext,
    RetryPolicy,
    StaleVersion,
    Subject,
    race_of,
)

CUSTOMER = Subject("customer c-1", {"customer_id": "c-1"})


class _Driver(Exception):
    """A driver's error as asyncpg's adaptor raises it: with its SQLSTATE."""

    def __init__(self, sqlstate: str, message: str = "") -> None:
        super().__init__(message or sqlstate)
        self.sqlstate = sqlstate


def _postgres(kind: type[DBAPIError], sqlstate: str) -> DBAPIError:
    return kind("INSERT ...", {}, _Driver(sqlstate))


def _conflict() -> ConcurrencyConflict:
    return ConcurrencyConflict("t1", "c-1", 3)


def _policy(pauses: list[float], **overrides: object) -> RetryPolicy:
    async def sleep(seconds: float) -> None:
        pauses.append(seconds)

    # The jitter's upper bound stands for the random draw: the pauses show the bound.
    return RetryPolicy(jitter=lambda low, high: high, sleep=sleep, **overrides)  # type: ignore[arg-type]


def _losing(times: int, race: Callable[[], BaseException]) -> Callable[[], Awaitable[str]]:
    calls = 0

    async def attempt() -> str:
        nonlocal calls
        calls += 1
        if calls <= times:
            raise race()
        return f"landed on attempt {calls}"

    return attempt


@pytest.mark.parametrize(
    ("race", "named"),
    [
        (_conflict, "version"),
        (lambda: _postgres(DBAPIError, "40P01"), "deadlock"),
        (lambda: _postgres(DBAPIError, "40001"), "serialization failure"),
        (lambda: _postgres(IntegrityError, "23505"), "unique key"),
        (
            lambda: IntegrityError(
                "INSERT ...", {}, sqlite3.IntegrityError("UNIQUE constraint failed: orders.id")
            ),
            "unique key",
        ),
        (
            lambda: OperationalError("BEGIN", {}, sqlite3.OperationalError("database is locked")),
            "database locked",
        ),
    ],
)
async def test_a_lost_race_is_decided_again_after_a_pause(
    race: Callable[[], BaseException], named: str
) -> None:
    pauses: list[float] = []

    result = await _policy(pauses).run(CUSTOMER, None, _losing(2, race))

    assert race_of(race()) == named
    assert result == "landed on attempt 3"
    assert pauses == [0.005, 0.010]


@pytest.mark.parametrize(
    "fault",
    [
        lambda: _postgres(IntegrityError, "23502"),  # a NOT NULL column left empty
        lambda: _postgres(DBAPIError, "42P01"),  # a table that is not there
        lambda: OperationalError("SELECT", {}, sqlite3.OperationalError("no such table: x")),
        lambda: ValueError("a bug"),
    ],
)
async def test_a_fault_is_not_a_race_and_is_raised_at_once(
    fault: Callable[[], BaseException],
) -> None:
    pauses: list[float] = []
    attempt = _losing(1, fault)

    with pytest.raises(type(fault())):
        await _policy(pauses).run(CUSTOMER, None, attempt)

    assert pauses == []


async def test_with_if_match_a_version_conflict_is_stale_at_once() -> None:
    pauses: list[float] = []

    with pytest.raises(StaleVersion) as stale:
        await _policy(pauses).run(CUSTOMER, 3, _losing(1, _conflict))

    assert pauses == []
    assert stale.value.status_code == 412
    assert stale.value.body()["detail"] == "customer c-1 changed since version 3"
    assert stale.value.body()["customer_id"] == "c-1"


async def test_with_if_match_a_deadlock_is_still_decided_again() -> None:
    # The caller's version check runs again inside the next attempt.
    result = await _policy([]).run(CUSTOMER, 3, _losing(1, lambda: _postgres(DBAPIError, "40P01")))

    assert result == "landed on attempt 2"


async def test_past_its_attempts_a_write_is_busy() -> None:
    pauses: list[float] = []

    with pytest.raises(Busy) as busy:
        await _policy(pauses, attempts=4).run(CUSTOMER, None, _losing(99, _conflict))

    assert len(pauses) == 3
    assert busy.value.status_code == 409
    assert busy.value.body()["detail"] == "customer c-1 changed concurrently; try again"
    assert busy.value.body()["customer_id"] == "c-1"


async def test_without_a_bound_a_write_is_decided_again_as_often_as_it_takes() -> None:
    pauses: list[float] = []

    result = await _policy(pauses, attempts=None).run(CUSTOMER, None, _losing(25, _conflict))

    assert result == "landed on attempt 26"
    # The pause grows with each retry up to its tenth, then stays there.
    assert pauses[:3] == [0.005, 0.010, 0.015]
    assert set(pauses[9:]) == {0.05}


def test_the_pause_is_a_random_draw_below_its_bound() -> None:
    policy = RetryPolicy()

    pauses = [policy.pause(3) for _ in range(200)]

    assert all(0 <= p <= 0.015 for p in pauses)
    assert len(set(pauses)) > 1


def test_a_stale_version_names_the_version_it_is_at_when_known() -> None:
    stale = StaleVersion("ticket t-1", 2, 5)

    assert stale.body()["detail"] == "ticket t-1 is at version 5, not 2"
    assert stale.body()["current_version"] == 5


# --- two writers, one stream, a real database -------------------------------------------


class _Ledger(HandlerContext):
    service = "write-path-test"


async def test_two_writers_racing_on_one_stream_both_land(any_engine: AsyncEngine) -> None:
    store = EventStore(any_engine)
    await store.create_tables()
    context = _Ledger(store)
    # Both read version 0 before either appends: one must lose and decide again.
    both_read = asyncio.Barrier(2)
    attempts: list[str] = []

    def writer(name: str, minutes: int) -> Callable[[], Awaitable[int]]:
        async def attempt() -> int:
            attempts.append(name)
            version = await store.stream_version("t1", "c-1")
            if attempts.count(name) == 1:
                await both_read.wait()
            return await store.append("t1", "c-1", version, [visit("c-1", minutes)])

        return attempt

    landed = await asyncio.gather(
        context.retrying("c-1", None, writer("first", 1)),
        context.retrying("c-1", None, writer("second", 2)),
    )

    assert sorted(landed) == [1, 2]
    assert len(attempts) == 3  # one of the two wrote after a retry
    stream = await store.read_stream("t1", "c-1")
    assert sorted(e.data["minutes"] for e in stream) == [1, 2]
