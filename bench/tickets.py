"""Benchmark 10: tickets over HTTP beside contacts, and the SLA scheduler (issue 12).

a. ticket operations at 32 clients through the gateway, beside contacts registrations
   through the gateway in the same run (``bench/beside.py``): each client opens a
   ticket for a random registered customer, then replies to it publicly (the first
   reply stops the first-response clock), then opens the next; every request is one
   operation. The tenant has an SLA policy, so every ticket starts its clocks. The
   customers are registered first, with one ticket each, so the tickets service knows
   every one of them before the clock starts.
b. the SLA scheduler's search for due tickets (``read_model.ticket_list.due``, what every
   tick of ``services/tickets/handlers/breach_scheduler.py`` asks first, on its
   ``next_due_at`` index) among ``scheduler_tickets`` open tickets written straight into
   the service's read table (a fresh database at the service's Alembic head, analysed as
   autovacuum would): 1 % of them overdue, the rest due over the next day. Timed: a
   tick's search when nothing is due yet, and one that finds a full batch (500) of the
   overdue ones; each repeated, median and p99. Looking after each due ticket (its stream, the
   breach event) is the ticket's own work and not part of this figure.
"""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import asyncpg

from bench.beside import beside_registrations, each_once, settle_all
from bench.common import fresh_database, percentile
from bench.http import (
    CLIENTS,
    HttpPlan,
    Outcome,
    People,
    Users,
    _plain,
    _what,
    cheap_clients,
    client,
    log,
    projector_state,
    register_many,
    running_platform,
    scan_logs,
    token,
    warm_up,
)
from bench.lean import LeanClient
from libs.platform.db import create_engine
from libs.platform.migrations import prepare_schema
from services.tickets.migrations import FOLDER as MIGRATIONS
from services.tickets.read_model import ticket_list

POLICY = {"targets": {"normal": {"first_response_minutes": 60, "resolution_minutes": 480},
                      "urgent": {"first_response_minutes": 15, "resolution_minutes": 120}}}
NOW = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
OVERDUE_EVERY = 100  # 1 % of the open tickets are past a due time
SEARCHES = 30


class TicketsPlan(HttpPlan, Protocol):
    scheduler_tickets: int


async def open_ticket(c: LeanClient, customer_id: str) -> tuple[Outcome, str | None]:
    response = await c.post("/api/v1/tickets", json={
        "customer_id": customer_id, "subject": "洗衣机不转了", "channel": "phone",
        "category": "incident", "description": "The drum does not turn since this morning."})
    if response.status_code == 201:
        return ("201", True, ""), str(response.json()["id"])
    return (str(response.status_code), False, response.text), None


class TicketWork:
    """Per client: open a ticket, then reply to it, then open the next."""

    def __init__(self, customers: list[str]) -> None:
        self.customers = customers
        self.pick = random.Random(12)
        self.waiting: dict[int, str] = {}

    async def __call__(self, c: LeanClient) -> Outcome:
        ticket = self.waiting.pop(id(c), None)
        if ticket is None:
            outcome, opened = await open_ticket(c, self.pick.choice(self.customers))
            if opened is not None:
                self.waiting[id(c)] = opened
            return outcome
        response = await c.post(f"/api/v1/tickets/{ticket}/replies",
                                json={"body": "我们的工程师明天上午上门。", "public": True})
        if response.status_code == 200:
            return "200", True, ""
        return str(response.status_code), False, response.text


async def scheduler_search(open_tickets: int, batch: int = 500) -> dict[str, Any]:
    """b.: the scheduler's due search among ``open_tickets`` rows of the read table."""
    async with fresh_database("tickets_sla") as url:
        engine = create_engine(url)
        try:
            await prepare_schema(engine, MIGRATIONS)
            conn = await asyncpg.connect(_plain(url))
            try:
                t0 = time.perf_counter()
                await conn.execute(
                    """
                    INSERT INTO tickets (tenant_id, ticket_id, customer_id, subject, channel,
                        category, priority, status, breached, opened_at, next_due_at,
                        calendar, calendar_version, version, updated_at)
                    SELECT 'tenant-' || (g % 50), 't-' || lpad(g::text, 8, '0'),
                           'c-' || (g % 20000), '洗衣机不转了', 'phone', 'incident',
                           CASE WHEN g % 10 = 0 THEN 'urgent' ELSE 'normal' END,
                           CASE WHEN g % 4 = 0 THEN 'pending' ELSE 'open' END, false,
                           $1::timestamptz - make_interval(secs => g % 7200),
                           CASE WHEN g % $2 = 0
                                THEN $1::timestamptz - make_interval(secs => 1 + g % 3600)
                                ELSE $1::timestamptz + make_interval(secs => 60 + g % 86400)
                           END,
                           'standard', 1, 1, $1::timestamptz
                    FROM generate_series(1, $3) AS g
                    """, NOW, OVERDUE_EVERY, open_tickets)
                await conn.execute("ANALYZE tickets")
                prepared = time.perf_counter() - t0
                plan = "\n".join(r[0] for r in await conn.fetch(
                    "EXPLAIN SELECT tenant_id, ticket_id, next_due_at FROM tickets WHERE "
                    "next_due_at IS NOT NULL AND next_due_at <= $1 ORDER BY next_due_at "
                    "LIMIT $2", NOW, batch))
            finally:
                await conn.close()
            overdue = open_tickets // OVERDUE_EVERY
            out: dict[str, Any] = {"open_tickets": open_tickets, "overdue": overdue,
                                   "batch": batch, "prepare_seconds": round(prepared, 1),
                                   "uses_index": "ix_tickets_next_due" in plan, "plan": plan}
            # "idle": a tick before anything is due; "due": one that finds a full batch.
            for label, now in (("idle", NOW - timedelta(hours=2)), ("due", NOW)):
                await ticket_list.due(engine, now, batch)  # a warm pool and plan cache
                seconds, found = [], 0
                for _ in range(SEARCHES):
                    started = time.perf_counter()
                    found = len(await ticket_list.due(engine, now, batch))
                    seconds.append(time.perf_counter() - started)
                out[label] = {"found": found,
                              "p50_ms": round(percentile(seconds, 0.5) * 1000, 2),
                              "p99_ms": round(percentile(seconds, 0.99) * 1000, 2),
                              "searches": SEARCHES}
            if out["due"]["found"] != min(batch, overdue) or out["idle"]["found"] != 0:
                raise RuntimeError(f"the due search found {out['due']['found']} / "
                                   f"{out['idle']['found']}, expected {min(batch, overdue)} / 0")
            return out
        finally:
            await engine.dispose()


async def bench_tickets(plan: TicketsPlan) -> dict[str, Any]:
    cheap_clients()
    results: dict[str, Any] = {
        "kind": "http", "settle_seconds": {}, "ratios_label": "ratios",
        "what": _what(plan) + "; a. ticket operations (open, then a public reply) and "
        "contacts registrations through the gateway, alternating; b. the SLA scheduler's "
        f"due search among {plan.scheduler_tickets:,} open tickets in "
        "its read table (its own database, no platform)"}
    ratios: dict[str, float] = {}
    async with running_platform("tickets") as platform:
        people = People(prefix="tick", phone_prefix="136")
        bearer = token()
        urls = platform.urls
        async with (client(urls["gateway"], bearer) as ops,
                    client(urls["customer360"], bearer) as c360):
            await warm_up(platform, ops, ops, people)
            policy = await ops.put("/api/v1/sla-policies/default", json=POLICY)
            if policy.status_code != 200:
                raise RuntimeError(f"SLA policy: {policy.status_code} {policy.text[:300]}")
            t0 = time.perf_counter()
            async with Users(urls["contacts"], bearer, CLIENTS) as users:
                customers = await register_many(users, people, plan.http_customers)
            async with Users(urls["gateway"], bearer, CLIENTS) as users:
                failures = await each_once(users, customers,
                                           lambda c, cid: _first(c, cid))
            if failures:
                raise RuntimeError(f"{len(failures)} first tickets failed: {failures[:3]}")
            results["preregistered"] = {"customers": len(customers),
                                        "seconds": round(time.perf_counter() - t0, 1)}
            results["settle_seconds"]["setup"] = await settle_all(platform, c360)
            results["projector"] = await projector_state(c360)
            rows, ratio = await beside_registrations(
                plan, platform, bearer, c360, people, name="tickets",
                test="a. ticket operations (open, reply)", unit="operations/s",
                op=TicketWork(customers), settled=results["settle_seconds"])
            if ratio is not None:
                ratios["ticket operations/s / registrations/s"] = ratio
        platform.check_alive()
        results["logs"] = scan_logs(platform)
        results["startup"] = {**platform.timings, "until_steady": platform.warmup}

    open_tickets = plan.scheduler_tickets
    search = await scheduler_search(open_tickets)
    log(f"  tickets b. due search among {open_tickets:,} open tickets: idle p50 "
        f"{search['idle']['p50_ms']} ms, a batch of {search['due']['found']} p50 "
        f"{search['due']['p50_ms']} ms (index used: {search['uses_index']})")
    results["scheduler"] = search
    for label, test in (("idle", "b. SLA due search, nothing due"),
                        ("due", f"b. SLA due search, {search['due']['found']} due")):
        found = search[label]
        rows.append({"test": test, "system": "tickets read table",
                     "mode": f"{open_tickets:,} open tickets, {search['overdue']:,} overdue",
                     "unit": "searches/s", "target": "reference, no target", "met": None,
                     "runs": [{"rate": round(1000 / found["p50_ms"], 1) if found["p50_ms"]
                               else None, **found}],
                     "rate": round(1000 / found["p50_ms"], 1) if found["p50_ms"] else None,
                     "p50_ms": found["p50_ms"], "p99_ms": found["p99_ms"],
                     "note": f"{found['searches']} searches; next_due_at index used: "
                             f"{search['uses_index']}"})
    results["rows"] = rows
    results["ratios"] = {"": ratios}
    results["target"] = ("none set (issue 12 asks for the figures): every request answered "
                         "as expected; the due search uses the next_due_at index")
    results["met"] = search["uses_index"] and all(r.get("errors", 0) == 0 for r in rows)
    return results


async def _first(c: LeanClient, customer_id: str) -> Outcome:
    outcome, _ = await open_ticket(c, customer_id)
    return outcome
