"""Benchmark 8: the floor, what this machine serves through the platform's HTTP stack
when the request does no work at all.

Two trivial FastAPI apps, each served as the services are (one uvicorn process,
uvloop, httptools, no access log), loaded by the same lean client and closed loop
as benchmarks 6 and 7 (32 users):

* ``1 hop``: ``GET /floor`` answered at once with a 60-byte JSON object; the most a
  single service process can answer on this machine, whatever it does.
* ``2 hops``: a pass-through app in front of it that forwards the request with the
  gateway's own upstream client (httpx over aiohttp, decision 0007) and relays the
  answer; the most any request through the gateway can reach.

Every real request adds its own work on top (authentication, validation, the
database, the event store, logs and metrics), so these rates bound what benchmarks 6
and 7 can show on this machine.

    python -m bench.run --only floor
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI, Request, Response

from bench import http
from bench.common import median
from libs.platform.broker import free_port

ROOT = Path(__file__).resolve().parent.parent
START_SECONDS = 60.0
FLOOR_BODY = {"id": "3f1c0a52-7e41-4c55-9d7c-1b6f0f0b9a10", "version": 1, "kind": "person"}

# --------------------------------------------------------------------------- the apps

app = FastAPI()


@app.get("/floor")
async def floor() -> dict[str, Any]:
    return FLOOR_BODY


hop = FastAPI()
_upstream: httpx.AsyncClient | None = None


@hop.get("/floor")
async def forward(request: Request) -> Response:
    global _upstream
    if _upstream is None:
        from services.gateway.proxy import UpstreamTransport

        limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
        _upstream = httpx.AsyncClient(transport=UpstreamTransport(limits=limits),
                                      trust_env=False, timeout=10.0)
    answer = await _upstream.get(os.environ["FLOOR_UPSTREAM"] + "/floor",
                                 headers={"authorization": request.headers.get("authorization",
                                                                               "")})
    return Response(answer.content, status_code=answer.status_code,
                    media_type=answer.headers.get("content-type"))


# --------------------------------------------------------------------------- the benchmark


def _serve(target: str, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "uvicorn", target, "--port", str(port), "--loop", "uvloop",
         "--http", "httptools", "--no-access-log", "--log-level", "warning"],
        cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)


@asynccontextmanager
async def _apps() -> AsyncIterator[tuple[dict[str, str], dict[str, int]]]:
    ports = {"app": free_port(), "hop": free_port()}
    upstream = f"http://127.0.0.1:{ports['app']}"
    processes = {"app": _serve("bench.floor:app", ports["app"], {}),
                 "hop": _serve("bench.floor:hop", ports["hop"], {"FLOOR_UPSTREAM": upstream})}
    try:
        urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
        # Importing FastAPI and uvicorn takes seconds on a busy machine: wait on a
        # deadline, not a count of tries, and stop waiting for a process that exited.
        deadline = time.monotonic() + START_SECONDS
        async with httpx.AsyncClient(timeout=1.0) as probe:
            for name, url in urls.items():
                while True:
                    try:
                        if (await probe.get(url + "/floor")).status_code == 200:
                            break
                    except httpx.HTTPError:
                        pass
                    if processes[name].poll() is not None:
                        raise RuntimeError(f"{url} exited with {processes[name].returncode}")
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"{url} did not start within {START_SECONDS:g} s")
                    await asyncio.sleep(0.05)
        yield urls, {name: p.pid for name, p in processes.items()}
    finally:
        for p in processes.values():
            p.terminate()
        for p in processes.values():
            p.wait(timeout=10)


async def _get_floor(c: Any) -> http.Outcome:
    response = await c.get("/floor")
    if response.status_code == 200:
        return "200", True, ""
    return str(response.status_code), False, response.text


async def bench_floor(plan: http.HttpPlan) -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = {"1 hop": [], "2 hops": []}
    async with _apps() as (urls, pids):
        meter = http.CpuMeter({"load generator": os.getpid(), **pids})
        for rep in range(plan.reps):
            for mode in (("1 hop", "2 hops") if rep % 2 == 0 else ("2 hops", "1 hop")):
                url = urls["app"] if mode == "1 hop" else urls["hop"]
                async with http.Users(url, "floor", http.CLIENTS) as users:
                    result = await http.closed_loop(users, _get_floor, warmup=plan.http_warmup,
                                                    duration=plan.http_duration, meter=meter)
                runs[mode].append(result)
                http.log(f"  floor rep {rep + 1} {mode:6s} {result['rate']:>9.1f} requests/s "
                         f"(p99 {result['p99_ms']} ms, cores {result['cpu_cores']})")
    rows = []
    for mode, results in runs.items():
        rows.append({"system": "trivial FastAPI", "mode": mode, "runs": results,
                     "median_rate": round(median([r["rate"] for r in results]), 1),
                     "median_p50_ms": median([r["p50_ms"] for r in results]),
                     "median_p99_ms": median([r["p99_ms"] for r in results])})
    return {
        "what": (f"a trivial FastAPI app served as the services are (uvicorn, uvloop, "
                 f"httptools), alone (1 hop) and behind a pass-through app using the "
                 f"gateway's upstream client (2 hops); {http.CLIENTS} users, closed loop, "
                 f"the lean client, {plan.http_warmup:g} s warm-up + {plan.http_duration:g} s "
                 f"measured, {plan.reps} repetition(s)"),
        "rows": rows,
        "target": None,  # a reference: the ceiling of benchmarks 6 and 7 on this machine
        "met": None,
    }
