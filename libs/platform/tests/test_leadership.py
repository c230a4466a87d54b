"""One holder of a role per database, across processes: PostgreSQL advisory lock or a
file lock beside the SQLite file."""

from __future__ import annotations

import asyncio

from sqlalchemy.ext.asyncio import AsyncEngine

from libs.events.outbox import _single_relay
from libs.platform.leadership import Leadership, exclusively


async def test_a_role_has_one_holder_until_it_lets_go(any_engine: AsyncEngine) -> None:
    first, second = Leadership(any_engine, "relay"), Leadership(any_engine, "relay")
    assert await first.try_acquire()

    assert not await second.try_acquire()
    other_role = Leadership(any_engine, "projector")
    assert await other_role.try_acquire()  # another role is free
    await other_role.release()

    await first.release()
    assert await second.try_acquire()
    await second.release()


async def test_a_second_relay_on_sqlite_waits_while_the_first_publishes(
    sqlite_engine: AsyncEngine,
) -> None:
    stop = asyncio.Event()
    leader = _single_relay(sqlite_engine, "crm.contacts.events", stop)
    assert await leader.__aenter__()

    standby = _single_relay(sqlite_engine, "crm.contacts.events", stop)
    entering = asyncio.create_task(standby.__aenter__())
    for _ in range(5):  # its first attempt takes no I/O: it has been refused by now
        await asyncio.sleep(0)
    assert not entering.done()

    await leader.__aexit__(None, None, None)
    assert await asyncio.wait_for(entering, timeout=5)  # takes over within a retry
    await standby.__aexit__(None, None, None)


async def test_a_block_run_exclusively_holds_the_role_until_it_ends(
    any_engine: AsyncEngine,
) -> None:
    other = Leadership(any_engine, "tables")
    async with exclusively(any_engine, "tables"):
        assert not await other.try_acquire()

    assert await other.try_acquire()
    await other.release()
