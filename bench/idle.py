"""What an idle platform costs (issue 25, decision 0107): ``make run``'s processes on
SQLite with the bundled broker, started, left to settle, then watched for a while with
no request arriving. The figure is the cores every process of the platform (each
service and the broker) used over the window, per process and in all; then one
registration through the gateway, to show the first event after a quiet spell still
reaches the 360 view (the idle fetch wait is what it may cost there).

    python -m bench.run --only idle
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from bench import http

# Past start-up: processes load code, join their groups and make their topics.
SETTLE_SECONDS = 20.0
TARGET_CORES = 0.1
TARGET = f"an idle make run under {TARGET_CORES} of a core in all"


async def _first_registration_visible(platform: http.Platform) -> float:
    """Seconds from a registration's 201 to its 360 view, after the quiet spell."""
    headers = {"Authorization": f"Bearer {http.token()}"}
    async with httpx.AsyncClient(base_url=platform.urls["gateway"], headers=headers,
                                 timeout=10) as client:
        made = await client.post("/api/v1/customers",
                                 json={"kind": "person", "name": "静 安", "email": "jing@idle.cn"})
        made.raise_for_status()
        started = time.perf_counter()
        customer = made.json()["id"]
        while time.perf_counter() - started < 10:
            seen = await client.get(f"/api/v1/customers/{customer}/360")
            if seen.status_code == 200:
                return time.perf_counter() - started
            await asyncio.sleep(0.01)
    raise RuntimeError("the registration never reached the 360 view")


async def bench_idle(plan: http.HttpPlan) -> dict[str, Any]:
    window = max(10.0, plan.http_steady_seconds)
    rows = []
    for rep in range(plan.reps):
        http.log(f"   idle platform (repetition {rep + 1})")
        async with http.running_platform(f"idle-{rep}", sqlite=True) as platform:
            await asyncio.sleep(SETTLE_SECONDS)
            before = platform.meter.snapshot()
            await asyncio.sleep(window)
            cores = platform.meter.cores(before, platform.meter.snapshot())
            visible = await _first_registration_visible(platform)
            platform.check_alive()
        processes = http.CpuMeter.platform(cores)
        rows.append({"cores": round(sum(processes.values()), 3), "processes": processes,
                     "first_visible_ms": round(visible * 1000, 1)})
    total = sorted(r["cores"] for r in rows)[len(rows) // 2]
    return {
        "kind": "idle",
        "what": (f"make run's processes (SQLite, the bundled broker) left idle {window:g} s "
                 f"after {SETTLE_SECONDS:g} s to settle, {plan.reps} repetition(s); then one "
                 "registration's 201 to its 360 view"),
        "rows": rows,
        "cores": total,
        "target": TARGET,
        "met": total < TARGET_CORES,
    }


def markdown(bench: dict[str, Any]) -> list[str]:
    names = sorted({n for r in bench["rows"] for n in r["processes"]})
    lines = ["| repetition | platform cores | " + " | ".join(names)
             + " | first registration visible ms |",
             "|---|---:|" + "---:|" * len(names) + "---:|"]
    for n, r in enumerate(bench["rows"], start=1):
        lines.append(f"| {n} | {r['cores']} | "
                     + " | ".join(str(r["processes"].get(name, 0)) for name in names)
                     + f" | {r['first_visible_ms']} |")
    lines += ["", f"Median: {bench['cores']} cores.", ""]
    return lines
