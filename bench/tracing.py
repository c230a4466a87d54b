"""What traces cost (issue 28, decision 0103): registrations through the gateway at a
steady rate, with traces off, at 10 % of the actions and at 100 %, in one run.

Each mode runs on a platform of its own, started as ``make run`` starts it (SQLite
files, the bundled broker: a PostgreSQL server shared with other work can run out of
connections, and the cost of traces is the services', not the database's), with
``OTEL_EXPORTER_OTLP_ENDPOINT`` (and ``OTEL_TRACES_SAMPLER_ARG``) set, or not: traces
are settings of the processes, not of a request. The spans go to an OTLP sink in this
process that answers every export with 200 and reads nothing, so the platform pays for
making and sending spans and nothing else. The rate is one the platform sustains with
room to spare, so the CPU it uses per registration compares across modes: the figure is
the CPU of the platform's processes (every service and the broker) over the measured
window, per registration answered. A registration reaches every
projection in that window (six consumers of ``crm.contacts.events``), so their applies
and sends are counted with it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from bench import http
from bench.common import fmt, median

MODES = (("off", None), ("10 %", "0.1"), ("100 %", "1.0"))
# Registrations/s through the gateway: about half of what the platform sustains on
# this 2-core machine (about 72 ms of platform CPU each), so every mode answers all of
# them with cores to spare and CPU per registration compares. At 25/s the platform used
# 1.8 cores, the machine was saturated, and a costlier mode showed in latency instead.
RATE = 10.0
# Past start-up: the first requests of a fresh platform load code and warm caches.
WARMUP_SECONDS = 5.0
TARGET = "platform CPU per registration at 10 % within 5 % of off"


@contextmanager
def otlp_sink() -> Iterator[str]:
    """An OTLP/HTTP endpoint that takes every export and keeps nothing."""

    class Sink(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


async def _registrations(plan: http.HttpPlan, label: str, env: dict[str, str]
                         ) -> dict[str, Any]:
    slug = label.replace(" %", "pct").replace(" ", "")
    async with http.running_platform(f"tracing-{slug}", env, sqlite=True) as platform:
        people = http.People(prefix=f"trace{slug}-")
        tally = http.Tally()
        async with http.Users(platform.urls["gateway"], http.token(), http.STEADY_USERS
                              ) as users:

            async def fire(at: float, measured: bool) -> bool:
                async with users.one() as c:
                    outcome = await http.attempt(lambda: http.register(c, people))
                if measured:
                    tally.record(outcome, time.perf_counter() - at)
                return outcome[1]

            result = await http.open_loop(
                RATE, warmup=max(plan.http_warmup, WARMUP_SECONDS),
                seconds=plan.http_steady_seconds, fire=fire, meter=platform.meter)
        result.update(tally.summary())
        platform.check_alive()
    cores = result["cpu_cores"]
    platform_cores = sum(http.CpuMeter.platform(cores).values())
    answered = max(1, result["answered"])
    window = result["cpu_window_seconds"]
    return {"mode": label, **result,
            "platform_cores": round(platform_cores, 2),
            "platform_cpu_ms_per_registration": round(platform_cores * window / answered * 1000,
                                                      2)}


async def bench_tracing(plan: http.HttpPlan) -> dict[str, Any]:
    """``plan.reps`` repetitions, the modes' order rotating; each mode's figure and its
    ratio to off are the medians over the repetitions (a ratio per repetition, so a
    busier minute weighs on both sides of it)."""
    http.cheap_clients()
    runs: dict[str, list[dict[str, Any]]] = {label: [] for label, _ in MODES}
    with otlp_sink() as endpoint:
        for rep in range(plan.reps):
            for label, ratio in MODES[rep % len(MODES):] + MODES[:rep % len(MODES)]:
                env: dict[str, str] = {}
                if ratio is not None:
                    env |= {"OTEL_SDK_DISABLED": "false", "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
                            "OTEL_TRACES_SAMPLER_ARG": ratio}
                http.log(f"   traces {label} (repetition {rep + 1})")
                runs[label].append(await _registrations(plan, label, env))
    rows, ratios = [], {}
    for label, measured in runs.items():
        per_registration = [r["platform_cpu_ms_per_registration"] for r in measured]
        rows.append({**measured[-1], "runs": per_registration,
                     "platform_cpu_ms_per_registration": median(per_registration)})
        ratios[label] = round(median([
            r["platform_cpu_ms_per_registration"] / max(off["platform_cpu_ms_per_registration"],
                                                        0.01)
            for r, off in zip(measured, runs["off"], strict=True)]), 3)
    return {
        "kind": "tracing",
        "what": (f"registrations through the gateway at {RATE:g}/s for "
                 f"{plan.http_steady_seconds:g} s (after {WARMUP_SECONDS:g} s), traces off, "
                 "at 10 % and at 100 % of the actions, each on a platform of its own "
                 f"(SQLite, as make run), {plan.reps} repetition(s) in rotating order; "
                 "spans sent over OTLP/HTTP to a sink that keeps nothing"),
        "rows": rows,
        "ratios": ratios,
        "target": TARGET,
        "met": ratios["10 %"] <= 1.05,
    }


def markdown(bench: dict[str, Any]) -> list[str]:
    lines = [
        "| traces | answered | p50 ms | p99 ms | errors | platform cores | platform CPU ms "
        "/ registration (median) | runs | x off (median) |",
        "|---|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for r in bench["rows"]:
        lines.append(
            f"| {r['mode']} | {r['answered']} | {fmt(r.get('p50_ms'), 1)} | "
            f"{fmt(r.get('p99_ms'), 1)} | {fmt(r.get('errors'))} | {r['platform_cores']} | "
            f"{r['platform_cpu_ms_per_registration']} | "
            f"{', '.join(str(x) for x in r['runs'])} | {bench['ratios'][r['mode']]} |")
    return lines
