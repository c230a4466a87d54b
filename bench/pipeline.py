"""Benchmark 9: the pipeline over HTTP, beside contacts in the same run (issue 11).

The platform as ``bench/http.py`` starts it (every service in ``services/bootstrap.py``
as its own process). Customers are registered first (``http_customers``), and one
order is placed for each, so the pipeline knows every one of them (from contacts'
topic or by asking contacts) before the clock starts.

a. order placements (``POST /api/v1/orders``: a random registered customer, CNY, one
   or two lines) at 32 clients through the gateway, beside contacts registrations
   through the gateway, alternating repetitions (``bench/beside.py``); the ratio
   placements/s / registrations/s.
b. a CSV import of ``import_rows`` historic orders (``POST /api/v1/orders/import``, one
   order per row, 1 % bad rows, answered synchronously with its report) straight to the
   pipeline, beside contacts' CSV import of as many rows (a job, polled until done;
   ``bench/http.py``'s file) in the same run; rows/s each, and their ratio.
"""

from __future__ import annotations

import csv
import io
import json
import random
import time
from collections.abc import Sequence
from typing import Any

import httpx

from bench.beside import beside_registrations, each_once, settle_all
from bench.http import (
    CLIENTS,
    IMPORT_TENANT,
    CpuMeter,
    HttpPlan,
    Outcome,
    People,
    Platform,
    Users,
    _row,
    _what,
    cheap_clients,
    client,
    log,
    outbox_backlog,
    projector_state,
    register_many,
    run_import,
    running_platform,
    scan_logs,
    token,
    warm_up,
)
from bench.lean import LeanClient

# The whole file in one synchronous request: generous, past it the row reports the error.
ORDER_IMPORT_TIMEOUT = 600.0
SKUS = (("sku-wm-01", "滚筒洗衣机", 329_900), ("sku-fr-02", "双门冰箱", 459_900),
        ("sku-ac-03", "Split air conditioner", 289_900), ("sku-fl-04", "滤芯", 9_900))


def order_body(pick: random.Random, customers: Sequence[str]) -> dict[str, Any]:
    lines = [{"sku": s, "name": n, "quantity": pick.randint(1, 3), "unit_price": p}
             for s, n, p in pick.sample(SKUS, pick.randint(1, 2))]
    return {"customer_id": pick.choice(customers), "currency": "CNY", "lines": lines}


async def place(c: LeanClient, body: dict[str, Any]) -> Outcome:
    response = await c.post("/api/v1/orders", json=body)
    if response.status_code == 201:
        return "201", True, ""
    return str(response.status_code), False, response.text


def orders_csv(rows: int, customers: Sequence[str]) -> tuple[bytes, int]:
    """One order per row (its own external id, one line); row i (0-based) is bad when
    i % 100 == 37 (a quantity that is not a whole number). The bad rows' count."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["external_id", "customer_id", "currency", "placed_at", "sku", "name",
                     "quantity", "unit_price"])
    bad = 0
    for i in range(rows):
        sku, name, price = SKUS[i % len(SKUS)]
        quantity = str(1 + i % 3)
        if i % 100 == 37:
            quantity, bad = "two", bad + 1
        placed = f"{2020 + i % 6}-{1 + i % 12:02d}-{1 + i % 28:02d} {i % 24:02d}:{i % 60:02d}"
        writer.writerow([f"erp-{i:07d}", customers[i % len(customers)], "CNY", placed, sku,
                         name, quantity, price])
    return out.getvalue().encode("utf-8"), bad


async def import_orders(platform: Platform, bearer: str, rows: int, customers: Sequence[str]
                        ) -> dict[str, Any]:
    content, bad = orders_csv(rows, customers)
    async with client(platform.urls["pipeline"], bearer, timeout=ORDER_IMPORT_TIMEOUT) as c:
        before = platform.meter.snapshot()
        try:
            response = await c.post(
                "/api/v1/orders/import", files={"file": ("orders.csv", content, "text/csv")},
                data={"amounts": "minor", "timezone": "Asia/Shanghai"})
            status, text = str(response.status_code), response.text
        except httpx.HTTPError as exc:
            status, text = type(exc).__name__, repr(exc)
        after = platform.meter.snapshot()
    seconds = after[0] - before[0]
    out: dict[str, Any] = {"rows": rows, "bytes": len(content), "seconds": round(seconds, 2),
                           "status": status, "expected_bad": bad,
                           "cpu_cores": CpuMeter.cores(before, after)}
    if status != "200":
        return {**out, "rate": 0.0, "error": f"{status} after {seconds:.0f} s: {text[:300]}"}
    report = json.loads(text)
    return {**out, "rate": round(rows / seconds, 1), "rows_per_s": round(rows / seconds, 1),
            "created": report["created"], "already_imported": report["already_imported"],
            "refused": report["refused"], "row_error_samples": report["errors"][:3]}


async def bench_pipeline(plan: HttpPlan) -> dict[str, Any]:
    cheap_clients()
    results: dict[str, Any] = {
        "kind": "http", "settle_seconds": {}, "ratios_label": "ratios",
        "what": _what(plan) + "; a. order placements and contacts registrations through the "
        "gateway, alternating; b. an order CSV import straight to the pipeline and a "
        "contacts CSV import straight to contacts, one each"}
    rows: list[dict[str, Any]] = []
    ratios: dict[str, float] = {}
    async with running_platform("pipeline") as platform:
        people = People(prefix="pipe", phone_prefix="138")
        bearer = token()
        urls = platform.urls
        async with (client(urls["gateway"], bearer) as ops,
                    client(urls["customer360"], bearer) as c360):
            await warm_up(platform, ops, ops, people)
            t0 = time.perf_counter()
            async with Users(urls["contacts"], bearer, CLIENTS) as users:
                customers = await register_many(users, people, plan.http_customers)
            pick = random.Random(11)
            async with Users(urls["gateway"], bearer, CLIENTS) as users:
                failures = await each_once(users, customers, lambda c, cid: place(
                    c, {**order_body(pick, customers), "customer_id": cid}))
            if failures:
                raise RuntimeError(f"{len(failures)} first orders failed: {failures[:3]}")
            results["preregistered"] = {"customers": len(customers),
                                        "seconds": round(time.perf_counter() - t0, 1)}
            results["settle_seconds"]["setup"] = await settle_all(platform, c360)
            results["projector"] = await projector_state(c360)

            placed, ratio = await beside_registrations(
                plan, platform, bearer, c360, people, name="orders",
                test="a. order placements", unit="orders/s",
                op=lambda c: place(c, order_body(pick, customers)),
                settled=results["settle_seconds"])
            rows += placed
            if ratio is not None:
                ratios["orders/s / registrations/s"] = ratio

        orders = await import_orders(platform, bearer, plan.import_rows, customers)
        log(f"  pipeline b. order import {plan.import_rows:,} rows: {orders['seconds']} s, "
            + (f"{orders['rows_per_s']} rows/s, created {orders['created']:,}, refused "
               f"{orders['refused']}" if "error" not in orders else orders["error"]))
        contacts = await run_import(platform, plan.import_rows)
        contacts["outbox_backlog_after"] = await outbox_backlog(platform)
        log(f"  pipeline b. contacts import {plan.import_rows:,} rows: {contacts['seconds']} s, "
            + (f"{contacts['rows_per_s']} rows/s" if contacts["status"] == "200"
               else contacts["error"]))
        orders_ok = "error" not in orders and orders["created"] == plan.import_rows - orders[
            "expected_bad"] and orders["refused"] == orders["expected_bad"]
        rows.append(_row(
            "b. order CSV import", "pipeline", f"{plan.import_rows:,} rows, "
            f"{orders['bytes'] / 1e6:.1f} MB", "rows/s", [orders], "reference, no target",
            None, note=(f"{orders['seconds']:g} s; created {orders['created']:,}, refused "
                        f"{orders['refused']:,} (expected {orders['expected_bad']:,})"
                        if "error" not in orders else orders["error"])))
        contacts_ok = contacts["status"] == "200"
        rows.append(_row(
            "b. customer CSV import", "contacts", f"{plan.import_rows:,} rows, "
            f"{contacts['bytes'] / 1e6:.1f} MB, tenant {IMPORT_TENANT}", "rows/s",
            [{**contacts, "rate": contacts.get("rows_per_s", 0.0)}], "reference, no target",
            None, note=(f"{contacts['seconds']:g} s, a job; created {contacts['created']:,}"
                        if contacts_ok else contacts["error"])))
        if orders_ok and contacts_ok and contacts["rows_per_s"]:
            ratios["order import rows/s / customer import rows/s"] = round(
                orders["rows_per_s"] / contacts["rows_per_s"], 2)
        platform.check_alive()
        results["logs"] = scan_logs(platform)
        results["startup"] = {**platform.timings, "until_steady": platform.warmup}
    results["rows"] = rows
    results["ratios"] = {"": ratios}
    results["target"] = ("none set (issue 11 asks for the figures beside contacts'): every "
                         "request answered as expected and the import's report exact")
    results["met"] = (orders_ok and contacts_ok
                      and all(r.get("errors", 0) == 0 for r in rows))
    return results
