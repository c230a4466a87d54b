"""Scale (issue 25): a retailer's history on one machine, and every page read at that size.

    python -m bench.scale --customers 10000 --orders 100000
    python -m bench.scale --customers 1000 --orders 10000 --reads 50    # a quick look

On the platform as ``make run`` starts it, on PostgreSQL (``bench/http.py``), one tenant is
brought to ``--customers`` customers and ``--orders`` orders through the platform's own bulk
paths: the customer CSV import (a job, straight to contacts) and the order CSV import
(straight to the pipeline), then a mix through the gateway: a ticket for one customer in
ten (a complaint for one in three of those), an interaction for one in five, a check-in
for one in ten, a reward for one in five whose balance allows it, a partial refund of one
order in twenty. Every projection is then left to catch up, watched through each service's
ops report (lag in events, sampled every 2 s) while each service's resident memory is
sampled (its process tree). Then, through the gateway, one request at a time: customer
search, a 360 view, a loyalty balance and ledger page, a churn-risk page, and every
analytics figure with the funnel, as of now and as of a year back; p50 and p99 each.
Last, each service's database size.

Writes bench/results/scale-<customers>.json and .md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from bench import http, pipeline
from bench.common import percentile
from bench.http import (
    IMPORT_TENANT,
    CpuMeter,
    Platform,
    _plain,
    cheap_clients,
    client,
    log,
    process_tree,
    run_import,
    running_platform,
    token,
)

RESULTS = Path(__file__).parent / "results"
FIGURES = (
    "retention", "repurchase-rate", "order-frequency", "average-order-value", "clv",
    "churn-rate", "nps", "csat", "activity", "predicted-clv",
)
CATCH_UP_CAP = 3600.0
SAMPLE_SECONDS = 2.0


def _rss_mb(pid: int) -> float:
    """Resident memory of a process and its descendants, in MB (0 if gone)."""
    total = 0
    for current in process_tree(pid):
        try:
            status = Path(f"/proc/{current}/status").read_text()
        except OSError:
            continue
        total += next((int(line.split()[1]) for line in status.splitlines()
                       if line.startswith("VmRSS:")), 0)
    return round(total / 1024, 1)


async def _ids(platform: Platform, service: str, table: str, column: str) -> list[str]:
    """The import tenant's ids in ``service``'s ``table``, in order."""
    conn = await asyncpg.connect(_plain(platform.databases[service]))
    try:
        rows = await conn.fetch(
            f"SELECT {column} FROM {table} WHERE tenant_id = $1 ORDER BY 1", IMPORT_TENANT)
    finally:
        await conn.close()
    return [r[column] for r in rows]


async def _mix(platform: Platform, bearer: str, customers: list[str], orders: list[str]
               ) -> dict[str, Any]:
    """Through the gateway, 8 at a time: tickets, interactions and check-ins; a partial
    refund of one order in twenty; a reward asked for by one customer in five, redeemed
    where the balance allows (the others are counted apart)."""
    counts = {"tickets": 0, "interactions": 0, "check_ins": 0, "refunds": 0,
              "redemptions": 0, "too_few_points": 0, "errors": 0}
    headers: dict[str, dict[str, str]] = {}
    async with client(platform.urls["gateway"], bearer, timeout=30.0) as c:
        defined = await c.put("/api/v1/loyalty/rewards/tea-sample",
                              json={"name": "茶样礼盒", "cost": 10})
        if defined.status_code not in (200, 201):
            raise RuntimeError(f"reward not defined: {defined.status_code} {defined.text[:200]}")
    work: list[tuple[str, str, dict[str, Any]]] = []
    for i, order_id in enumerate(orders):
        if i % 20 == 3:
            work.append(("refunds", f"/api/v1/orders/{order_id}/refunds",
                         {"amount": 100, "reason": "破损"}))
    for i, customer in enumerate(customers):
        if i % 10 == 0:
            category = "complaint" if i % 30 == 0 else "question"
            work.append(("tickets", "/api/v1/tickets", {
                "customer_id": customer, "subject": f"问题 {i}", "category": category,
                "priority": "normal"}))
        if i % 5 == 1:
            work.append(("interactions", f"/api/v1/customers/{customer}/interactions", {
                "channel": "wechat", "direction": "outbound", "summary": "回访"}))
        if i % 10 == 2:
            work.append(("check_ins", f"/api/v1/customers/{customer}/loyalty/check-ins", {}))
        if i % 5 == 4:
            path = f"/api/v1/customers/{customer}/loyalty/redemptions"
            headers[path] = {"Idempotency-Key": f"scale-{i}"}
            work.append(("redemptions", path, {"reward_id": "tea-sample"}))
    errors: dict[str, str] = {}
    refused: dict[str, str] = {}
    queue: asyncio.Queue[tuple[str, str, dict[str, Any]]] = asyncio.Queue()
    for item in work:
        queue.put_nowait(item)
    t0 = time.perf_counter()

    async def worker() -> None:
        async with client(platform.urls["gateway"], bearer, timeout=30.0) as c:
            while not queue.empty():
                kind, path, body = queue.get_nowait()
                if kind == "redemptions":
                    # A member redeems when the balance allows it: asked first, as the
                    # console and the member page do.
                    account = await c.get(path.removesuffix("/redemptions"))
                    if account.status_code != 200 or account.json().get("balance", 0) < 10:
                        counts["too_few_points"] += 1
                        continue
                response = await c.post(path, json=body, headers=headers.get(path))
                if response.status_code in (200, 201):
                    counts[kind] += 1
                elif kind == "redemptions" and response.status_code == 409:
                    counts["too_few_points"] += 1
                    refused.setdefault(kind, response.text[:200])
                else:
                    counts["errors"] += 1
                    errors.setdefault(kind, f"{response.status_code} {response.text[:200]}")

    await asyncio.gather(*(worker() for _ in range(8)))
    seconds = time.perf_counter() - t0
    return {**counts, "seconds": round(seconds, 1),
            "per_second": round(len(work) / seconds, 1) if seconds else None,
            **({"first_errors": errors} if errors else {}),
            **({"first_refusals": refused} if refused else {})}


async def _catch_up(platform: Platform, bearer: str) -> dict[str, Any]:
    """Until every projection of every service reports no lag three samples running:
    per projection the peak lag, when it last had any and its catch-up rate; per service
    its peak resident memory."""
    watched = [name for name in platform.urls if name != "gateway"]
    peak_lag: dict[str, int] = {}
    peak_at: dict[str, float] = {}
    caught_at: dict[str, float] = {}
    peak_rss: dict[str, float] = {}
    quiet = 0
    t0 = time.perf_counter()
    before = platform.meter.snapshot()
    async with client(platform.urls["gateway"], bearer, timeout=30.0) as c:
        while time.perf_counter() - t0 < CATCH_UP_CAP:
            now = time.perf_counter() - t0
            for name, process in platform.processes.items():
                peak_rss[name] = max(peak_rss.get(name, 0.0), _rss_mb(process.pid))
            lagging = 0
            for service in watched:
                response = await c.get(f"/api/v1/ops/{service}")
                if response.status_code != 200:
                    continue
                for projection in response.json()["projections"]:
                    key = f"{service}/{projection['name']}"
                    lag = projection["lag_events"]
                    if lag is None:
                        lagging += 1
                        continue
                    if lag > peak_lag.get(key, -1):
                        peak_lag[key], peak_at[key] = lag, now
                    if lag > 0:
                        lagging += 1
                        caught_at.pop(key, None)
                    else:
                        caught_at.setdefault(key, now)
            quiet = quiet + 1 if lagging == 0 else 0
            if quiet >= 3:
                break
            await asyncio.sleep(SAMPLE_SECONDS)
    projections = {}
    for key, lag in sorted(peak_lag.items()):
        took = caught_at.get(key, time.perf_counter() - t0) - peak_at[key]
        projections[key] = {"peak_lag_events": lag, "caught_up_after_s": round(
            caught_at.get(key, -1.0), 1), "events_per_s": round(lag / took, 1) if took > 0 and lag
            else None}
    return {"seconds": round(time.perf_counter() - t0, 1), "projections": projections,
            "peak_rss_mb": peak_rss,
            "cpu_cores": CpuMeter.cores(before, platform.meter.snapshot())}


async def _reads(platform: Platform, bearer: str, customers: list[str], n: int
                 ) -> dict[str, Any]:
    pick = random.Random(7)
    now = datetime.now(UTC)
    year_ago = now - timedelta(days=365)
    out: dict[str, Any] = {}
    async with client(platform.urls["gateway"], bearer, timeout=120.0) as c:

        async def each(label: str, paths: list[tuple[str, dict[str, Any]]]) -> None:
            took: list[float] = []
            statuses: dict[str, int] = {}
            refused: dict[str, str] = {}
            for path, params in paths:
                t = time.perf_counter()
                response = await c.get(path, params=params)
                took.append(time.perf_counter() - t)
                status = str(response.status_code)
                statuses[status] = statuses.get(status, 0) + 1
                if response.status_code != 200:
                    refused.setdefault(status, response.text[:200])
            out[label] = {"n": len(paths), "p50_ms": round(percentile(took, 0.5) * 1000, 1),
                          "p99_ms": round(percentile(took, 0.99) * 1000, 1),
                          "statuses": statuses, **({"refused": refused} if refused else {})}
            log(f"  scale read {label}: {out[label]}")

        some = [pick.choice(customers) for _ in range(n)]
        await each("search", [("/api/v1/customers", {"q": http.person_name(pick.randrange(
            len(customers)))[:2], "limit": 20}) for _ in range(n)])
        await each("360 view", [(f"/api/v1/customers/{cid}/360", {}) for cid in some])
        await each("loyalty balance", [(f"/api/v1/customers/{cid}/loyalty", {}) for cid in some])
        await each("loyalty ledger", [(f"/api/v1/customers/{cid}/loyalty/ledger", {"limit": 20})
                                      for cid in some])
        await each("churn-risk page", [("/api/v1/churn/risks", {"limit": 50})] * n)
        heavy = max(5, n // 10)
        for until, label in ((now, "now"), (year_ago, "a year back")):
            window = {"from": (until - timedelta(days=365)).isoformat(), "to": until.isoformat()}
            params = {**window, "as_of": until.isoformat()}
            await each(f"funnel ({label})", [("/api/v1/funnel", window)] * heavy)
            for figure in FIGURES:
                await each(f"analytics {figure} ({label})",
                           [(f"/api/v1/analytics/{figure}", params)] * heavy)
    return out


async def copy_ceiling(platform: Platform, service: str, seconds: float) -> dict[str, Any]:
    """What a raw COPY of the rows an import left in ``service``'s tables takes: every
    table with a ``tenant_id`` column, the tenant's rows read back and copied into an
    empty table of the same shape (its defaults and indexes). ``share`` is the import's
    rate as a share of COPY's (the import also decided each row: the target is 0.2)."""
    conn = await asyncpg.connect(_plain(platform.databases[service]))
    try:
        tables = [r["table_name"] for r in await conn.fetch(
            "SELECT table_name FROM information_schema.columns WHERE column_name = 'tenant_id'"
            " AND table_schema = 'public'")]
        copied: dict[str, int] = {}
        took = 0.0
        # The projections' tables (``_g<n>``) are filled by their own consumers, later.
        for table in [t for t in tables if not re.search(r"_g\d+$", t)]:
            rows = await conn.fetch(f'SELECT * FROM "{table}" WHERE tenant_id = $1', IMPORT_TENANT)
            if not rows:
                continue
            scratch = f"copy_{table}"[:60]
            await conn.execute(f'CREATE TEMP TABLE "{scratch}" (LIKE "{table}" INCLUDING DEFAULTS'
                               " INCLUDING INDEXES)")
            t = time.perf_counter()
            await conn.copy_records_to_table(scratch, records=[tuple(r) for r in rows],
                                             columns=list(rows[0].keys()))
            took += time.perf_counter() - t
            copied[table] = len(rows)
    finally:
        await conn.close()
    return {"tables": copied, "rows": sum(copied.values()), "copy_seconds": round(took, 2),
            "share": round(took / seconds, 3) if seconds else None}


async def _database_sizes(platform: Platform) -> dict[str, float]:
    sizes = {}
    for service, url in platform.databases.items():
        conn = await asyncpg.connect(_plain(url))
        try:
            sizes[service] = round(int(await conn.fetchval(
                "SELECT pg_database_size(current_database())")) / 2**20, 1)
        finally:
            await conn.close()
    return sizes


async def scale(customers: int, orders: int, reads: int) -> dict[str, Any]:
    cheap_clients()
    # A big file takes longer than the default budgets of the smaller benchmarks.
    http.IMPORT_TIMEOUT = max(http.IMPORT_TIMEOUT, customers / 20)
    pipeline.ORDER_IMPORT_TIMEOUT = max(pipeline.ORDER_IMPORT_TIMEOUT, orders / 50)
    result: dict[str, Any] = {"customers": customers, "orders": orders,
                              "started": datetime.now(UTC).isoformat()}
    async with running_platform(f"scale-{customers}") as platform:
        bearer = token(IMPORT_TENANT)
        operator = token(IMPORT_TENANT, ("admin", "operator"))  # reads every service's ops
        log(f"scale: importing {customers:,} customers")
        result["customer_import"] = await run_import(platform, customers)
        result["customer_import"]["copy"] = await copy_ceiling(
            platform, "contacts", result["customer_import"]["seconds"])
        ids = await _ids(platform, "contacts", "contacts_customers", "customer_id")
        result["customers_created"] = len(ids)
        log(f"scale: importing {orders:,} orders for {len(ids):,} customers")
        result["order_import"] = await pipeline.import_orders(platform, bearer, orders, ids)
        result["order_import"]["copy"] = await copy_ceiling(
            platform, "pipeline", result["order_import"]["seconds"])
        log(f"scale: {result['order_import'].get('rows_per_s')} order rows/s")
        # Every projection catches up with the imports: its rate, each service's memory.
        result["catch_up"] = await _catch_up(platform, operator)
        log(f"scale: caught up with the imports in {result['catch_up']['seconds']} s")
        order_ids = await _ids(platform, "pipeline", "pipeline_orders", "order_id")
        result["mix"] = await _mix(platform, bearer, ids, order_ids)
        log(f"scale: the mix {result['mix']}")
        result["catch_up_after_mix"] = await _catch_up(platform, operator)
        log(f"scale: caught up in {result['catch_up']['seconds']} s; reading")
        result["reads"] = await _reads(platform, bearer, ids, reads)
        result["database_mb"] = await _database_sizes(platform)
    result["finished"] = datetime.now(UTC).isoformat()
    return result


def _copied(imported: dict[str, Any]) -> str:
    copy = imported.get("copy") or {}
    return (f"{copy.get('rows', 0):,} rows in {len(copy.get('tables', {}))} tables, "
            f"{copy.get('copy_seconds')} s: the import at {copy.get('share')} of COPY")


def markdown(result: dict[str, Any]) -> str:
    lines = [f"# Scale: {result['customers']:,} customers, {result['orders']:,} orders",
             "", f"{result['started']} to {result['finished']}", "",
             f"- customer import: {result['customer_import'].get('rows_per_s')} rows/s "
             f"({result['customer_import'].get('seconds')} s); a raw COPY of the rows it "
             f"left: {_copied(result['customer_import'])}",
             f"- order import: {result['order_import'].get('rows_per_s')} rows/s "
             f"({result['order_import'].get('seconds')} s); a raw COPY of the rows it "
             f"left: {_copied(result['order_import'])}",
             f"- mix through the gateway: {result['mix']}",
             f"- catch-up after the imports: {result['catch_up']['seconds']} s, after the mix: "
             f"{result['catch_up_after_mix']['seconds']} s", "",
             "| projection | peak lag (events) | caught up at (s) | events/s |",
             "|---|---:|---:|---:|"]
    for key, p in result["catch_up"]["projections"].items():
        lines.append(f"| {key} | {p['peak_lag_events']:,} | {p['caught_up_after_s']} | "
                     f"{p['events_per_s']} |")
    lines += ["", "| service | peak RSS (MB) | database (MB) | cores during the catch-up |",
              "|---|---:|---:|---:|"]
    cores = result["catch_up"].get("cpu_cores", {})
    for name, rss in result["catch_up"]["peak_rss_mb"].items():
        lines.append(f"| {name} | {rss} | {result['database_mb'].get(name, '')} | "
                     f"{cores.get(name, '')} |")
    lines.append(f"| PostgreSQL (all) | | | {cores.get('postgres (all)', '')} |")
    lines.append(f"| machine | | | {cores.get('machine', '')} |")
    lines += ["", "| read through the gateway | n | p50 ms | p99 ms | answers |",
              "|---|---:|---:|---:|---|"]
    for label, r in result["reads"].items():
        lines.append(f"| {label} | {r['n']} | {r['p50_ms']} | {r['p99_ms']} | {r['statuses']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--reads", type=int, default=200,
                        help="requests per read (analytics and the funnel: a tenth)")
    args = parser.parse_args()
    result = asyncio.run(scale(args.customers, args.orders, args.reads))
    RESULTS.mkdir(exist_ok=True)
    stem = RESULTS / f"scale-{args.customers}"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2, ensure_ascii=False))
    stem.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
