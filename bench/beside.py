"""One service's operations beside contacts registrations, through the gateway, one run.

Shared by benchmarks 9 (pipeline) and 10 (tickets): the platform as ``bench/http.py``
starts it, both operations through the gateway at 32 concurrent clients (closed loop),
repetitions alternating which goes first, and between measurements the platform settles
(every service's outbox empty, the 360 projection's lag 0) so one measurement's backlog
does not load the next. The ratio is the median of the per-repetition ratios.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import asyncpg
import httpx

from bench.common import median
from bench.http import (
    CLIENTS,
    SETTLE_CAP,
    HttpPlan,
    Outcome,
    People,
    Platform,
    Users,
    _plain,
    _row,
    closed_loop,
    log,
    register,
    settle,
)
from bench.lean import LeanClient

Operation = Callable[[LeanClient], Awaitable[Outcome]]


async def outboxes_empty(platform: Platform, cap: float = SETTLE_CAP) -> float | None:
    """Every service's outbox drained (the relays caught up); seconds, None after ``cap``."""
    t0 = time.perf_counter()
    deadline = time.monotonic() + cap
    for name, url in platform.databases.items():
        conn = await asyncpg.connect(_plain(url))
        try:
            if not await conn.fetchval("SELECT to_regclass('outbox') IS NOT NULL"):
                continue
            while await conn.fetchval("SELECT count(*) FROM outbox"):
                platform.check_alive()
                if time.monotonic() > deadline:
                    log(f"  {name}'s outbox not empty after {cap:g} s")
                    return None
                await asyncio.sleep(0.2)
        finally:
            await conn.close()
    return round(time.perf_counter() - t0, 1)


async def settle_all(platform: Platform, c360: httpx.AsyncClient) -> float | None:
    waited = await outboxes_empty(platform)
    if waited is None:
        return None
    rest = await settle(platform, c360)
    return None if rest is None else round(waited + rest, 1)


async def each_once(users: Users, items: Sequence[str], op: Callable[[LeanClient, str],
                    Awaitable[Outcome]]) -> list[str]:
    """``op`` once per item, one per free user at a time; the failures."""
    failures: list[str] = []

    async def one(item: str) -> None:
        async with users.one() as c:
            status, ok, detail = await op(c, item)
        if not ok:
            failures.append(f"{status} {detail[:200]}")

    await asyncio.gather(*(one(item) for item in items))
    return failures


async def beside_registrations(
    plan: HttpPlan, platform: Platform, bearer: str, c360: httpx.AsyncClient, people: People,
    *, name: str, test: str, unit: str, op: Operation, settled: dict[str, Any],
) -> tuple[list[dict[str, Any]], float | None]:
    """Closed-loop runs of ``op`` and of registrations through the gateway, alternating;
    their two table rows and the median ratio of op rate / registration rate."""
    runs: dict[str, list[dict[str, Any]]] = {name: [], "registrations": []}
    ops: dict[str, Operation] = {name: op, "registrations": lambda c: register(c, people)}
    async with Users(platform.urls["gateway"], bearer, CLIENTS) as users:
        for rep in range(plan.reps):
            order = [name, "registrations"] if rep % 2 == 0 else ["registrations", name]
            for which in order:
                result = await closed_loop(users, ops[which], warmup=plan.http_warmup,
                                           duration=plan.http_duration, meter=platform.meter)
                runs[which].append(result)
                log(f"  {name} rep {rep + 1} {which:13s} {CLIENTS} clients "
                    f"{result['rate']:>8.1f}/s p50 {result['p50_ms']} p99 {result['p99_ms']} ms, "
                    f"errors {result['errors']}")
                settled[f"{which} {rep + 1}"] = await settle_all(platform, c360)
    load = f"{CLIENTS} clients, closed loop, through the gateway"
    rows = [
        _row(test, "gateway", load, unit, runs[name], "reference, no target", None),
        _row("registrations (contacts)", "gateway", load, "registrations/s",
             runs["registrations"], "reference, no target", None),
    ]
    per_rep = [a["rate"] / b["rate"] for a, b in zip(runs[name], runs["registrations"],
                                                     strict=True) if b["rate"]]
    return rows, (round(median(per_rep), 2) if per_rep else None)
