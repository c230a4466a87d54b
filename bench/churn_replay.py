"""Churn quality where users meet it: the CDNOW purchase log replayed through the
platform as ``make run`` starts it, the ranking read through the gateway.

    python -m bench.churn_replay                      # all 23,570 customers
    python -m bench.churn_replay --customers 3000     # a random sample (seeded)
    python -m bench.churn_replay --json out.json      # also every figure as JSON

Phases, each timed: the platform starts (every service, the bundled broker, one
PostgreSQL database per service); the customers are imported with the platform's own
customer import (a CSV: name, email, registered_at = the day of the first purchase);
one order per purchase with the order import (customer_id, currency, placed_at,
external_id, total: idempotent by external id); then the platform settles (every
outbox published, every projection caught up: loyalty turns each order into points,
the churn projector sees both). For each cutoff, a ranking as of the cutoff is asked
for (``POST /api/v1/churn/rankings``), waited for and read through the gateway, 500 a
page, and judged for each horizon by ROC AUC against "bought nothing within the
horizon", among the customers who had bought by the cutoff; beside it, on the same
customers in the same run: BG/NBD (``lifetimes``), days since the last purchase, and
the same alerts code scored in-process on orders alone (``bench.churn_quality``), so a
gap between the live and the in-process figure is what only the deployed path has.
Also per pair: the share of the top decile who then bought nothing, ours and BG/NBD's;
and, at the end, the ranking now read as the console reads it (kept: decision 0093),
pages of 50 through the gateway, p50 and p99.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import random
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import numpy as np

from bench import churn_quality, retail_data
from bench.http import running_platform, token
from services.alerts.domain.backtest import roc_auc
from services.alerts.domain.rules import default_rules

TENANT = "cdnow"
CUTOFFS = ("1997-06-30", "1997-09-30", "1997-12-31", "1998-03-31")
HORIZONS = (90, 180)
PAGE = 500
# Rows per order import request: one answers well within the gateway's 10 s.
ORDER_CHUNK = 500


@dataclass(frozen=True)
class Pair:
    cutoff: str
    horizon_days: int
    customers: int
    bought_nothing: float
    live: float
    in_process: float
    bgnbd: float
    days_since: float
    top_decile_live: float
    top_decile_bgnbd: float
    # Brier scores of the probability of no purchase in the horizon (decision 0101): the
    # live ranking's (its horizon is 90 days: None at other horizons) and BG/NBD's.
    brier_live: float | None = None
    brier_bgnbd: float | None = None


def purchases() -> dict[str, list[tuple[datetime, int]]]:
    """Every CDNOW purchase: customer -> (day, amount in cents), in order."""
    found: dict[str, list[tuple[datetime, int]]] = defaultdict(list)
    path = retail_data._datasets() / "CDNOW_master.txt"
    with path.open() as lines:
        next(lines)
        for line in lines:
            customer, day, _quantity, amount = line.split()
            at = datetime.strptime(day, "%Y%m%d").replace(tzinfo=UTC, hour=12)
            found[customer].append((at, max(1, round(float(amount) * 100))))
    return {c: sorted(p) for c, p in found.items()}


def _csv(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode()


async def _wait(client: httpx.AsyncClient, location: str, done: Callable[[Any], bool]) -> Any:
    while True:
        answer = await client.get(location)
        # A status read the gateway gave up on (a loaded machine): ask again.
        if answer.status_code not in (502, 503, 504):
            answer.raise_for_status()
            body = answer.json()
            if done(body):
                return body
        await asyncio.sleep(1.0)


async def import_customers(client: httpx.AsyncClient, bought: dict[str, list[Any]]) -> None:
    rows = [
        (f"CDNOW {c}", f"cdnow{c}@example.com", times[0][0].date().isoformat())
        for c, times in sorted(bought.items())
    ]
    answer = await client.post(
        "/api/v1/customers/imports",
        files={"file": ("customers.csv", _csv(("name", "email", "registered_at"), rows))},
        data={"kind": "person"},
    )
    answer.raise_for_status()
    job = await _wait(
        client, answer.headers["Location"], lambda b: b["status"] in ("succeeded", "failed")
    )
    if job["status"] != "succeeded" or job["report"]["created"] != len(rows):
        raise RuntimeError(f"the customer import did not create every customer: {job}")


async def customer_ids(client: httpx.AsyncClient) -> dict[str, str]:
    """CDNOW id -> the platform's customer id, from the customer list."""
    found: dict[str, str] = {}
    params: dict[str, Any] = {"limit": 200}
    while True:
        page = (await client.get("/api/v1/customers", params=params)).json()
        for item in page["items"]:
            found[item["email"].removeprefix("cdnow").split("@")[0]] = item["id"]
        if not page["next_cursor"]:
            return found
        params = {"limit": 200, "cursor": page["next_cursor"]}


async def import_orders(
    client: httpx.AsyncClient, bought: dict[str, list[Any]], ids: dict[str, str]
) -> int:
    rows = [
        (ids[c], "USD", at.isoformat(), f"CDNOW-{c}-{n}", amount)
        for c, times in sorted(bought.items())
        for n, (at, amount) in enumerate(times)
    ]
    header = ("customer_id", "currency", "placed_at", "external_id", "total")
    imported = 0
    for start in range(0, len(rows), ORDER_CHUNK):
        chunk = _csv(header, rows[start : start + ORDER_CHUNK])
        for attempt in range(5):
            answer = await client.post(
                "/api/v1/orders/import", files={"file": ("orders.csv", chunk)}, timeout=600
            )
            # The gateway gave up waiting (504) or the service was busy: the import is
            # idempotent by external id, so the same chunk again creates nothing twice.
            if answer.status_code not in (502, 503, 504):
                break
            await asyncio.sleep(2.0 * (attempt + 1))
        answer.raise_for_status()
        report = answer.json()
        if report.get("errors"):
            raise RuntimeError(f"orders refused: {report['errors'][:5]}")
        imported += int(report["created"]) + int(report["already_imported"])
    return imported


async def settle(client: httpx.AsyncClient, services: Sequence[str], quiet: int = 3) -> None:
    """Until every outbox is empty and every projection caught up, ``quiet`` times in a
    row (a projection's output is another's input)."""
    calm = 0
    while calm < quiet:
        busy = False
        for service in services:
            answer = await client.get(f"/api/v1/ops/{service}")
            if answer.status_code != 200:
                busy = True
                continue
            report = answer.json()
            outbox = report.get("outbox")
            if outbox and outbox["events"]:
                busy = True
            for projection in report["projections"]:
                if projection["lag_events"] is None or projection["lag_events"] > 0:
                    busy = True
        calm = 0 if busy else calm + 1
        await asyncio.sleep(2.0)


async def live_ranking(
    client: httpx.AsyncClient, cutoff: datetime
) -> tuple[list[str], dict[str, float]]:
    """The customers in the order of the ranking as of ``cutoff``, through the gateway,
    and each one's probability of no purchase in the next 90 days (where known)."""
    answer = await client.post("/api/v1/churn/rankings", json={"as_of": cutoff.isoformat()})
    answer.raise_for_status()
    location = answer.headers["Location"]
    job = await _wait(client, location, lambda b: b["status"] in ("done", "failed"))
    if job["status"] != "done":
        raise RuntimeError(f"the ranking failed: {job}")
    ranked: list[str] = []
    probability: dict[str, float] = {}
    params: dict[str, Any] = {"limit": PAGE}
    while True:
        page = (await client.get(location, params=params)).json()
        for item in page["items"]:
            ranked.append(item["customer_id"])
            if item.get("no_purchase_probability") is not None:
                probability[item["customer_id"]] = item["no_purchase_probability"]
        if not page["next_cursor"]:
            return ranked, probability
        params = {"limit": PAGE, "cursor": page["next_cursor"]}


async def kept_pages(client: httpx.AsyncClient, pages: int = 200) -> dict[str, Any]:
    """The ranking now, as the console reads it (``GET /api/v1/churn/risks``, kept:
    decision 0093): pages of 50 through the gateway from positions spread over the
    whole ranking, p50 and p99."""
    cursors: list[str | None] = [None]
    params: dict[str, Any] = {"limit": PAGE}
    while True:
        page = (await client.get("/api/v1/churn/risks", params=params)).json()
        if not page["next_cursor"]:
            break
        cursors.append(page["next_cursor"])
        params = {"limit": PAGE, "cursor": page["next_cursor"]}
    rng = random.Random(93)
    times = []
    for _ in range(pages):
        cursor = rng.choice(cursors)
        started = time.perf_counter()
        answer = await client.get(
            "/api/v1/churn/risks", params={"limit": 50, **({"cursor": cursor} if cursor else {})}
        )
        times.append(time.perf_counter() - started)
        answer.raise_for_status()
    times.sort()
    return {
        "pages": pages,
        "p50_ms": round(1000 * times[len(times) // 2], 1),
        "p99_ms": round(1000 * times[min(len(times) - 1, int(len(times) * 0.99))], 1),
    }


def top_decile_share(scores: dict[str, float], churned: dict[str, bool]) -> float:
    ranked = sorted(scores, key=lambda c: -scores[c])
    top = ranked[: max(1, len(ranked) // 10)]
    return round(sum(churned[c] for c in top) / len(top), 4)


# The horizon of the live probability of no purchase (services/alerts: HORIZON_DAYS).
LIVE_HORIZON_DAYS = 90


def brier(probability: dict[str, float], churned: dict[str, bool]) -> float:
    return round(sum((probability[c] - churned[c]) ** 2 for c in probability) / len(probability), 4)


def judge(
    history: dict[str, list[datetime]],
    cutoff_text: str,
    horizon: int,
    live_order: list[str],
    platform_id: dict[str, str],
    live_probability: dict[str, float],
) -> Pair:
    cutoff = churn_quality._day(cutoff_text)
    end = cutoff + timedelta(days=horizon)
    judged = {c: t for c, t in history.items() if t[0] <= cutoff}
    churned = {c: not any(cutoff < t <= end for t in times) for c, times in judged.items()}
    position = {customer: n for n, customer in enumerate(live_order)}
    live = {c: float(len(live_order) - position[platform_id[c]]) for c in judged}
    in_process = churn_quality.our_scores(judged, cutoff, default_rules())
    bgnbd, _ = churn_quality.bgnbd_scores(judged, cutoff, horizon, "lifetimes")
    ids = sorted(judged)
    brier_live = brier_bgnbd = None
    if horizon == LIVE_HORIZON_DAYS and all(platform_id[c] in live_probability for c in ids):
        fitted_ids, summary, model = churn_quality.bgnbd_model(judged, cutoff)
        theirs = dict(zip(fitted_ids, model.no_purchase(summary, horizon / 7), strict=True))
        brier_live = brier({c: live_probability[platform_id[c]] for c in ids}, churned)
        brier_bgnbd = brier({c: float(theirs[c]) for c in ids}, churned)
    recency = {
        c: (cutoff - max(t for t in judged[c] if t <= cutoff)).total_seconds() for c in judged
    }
    ids = sorted(judged)
    labels = [churned[c] for c in ids]

    def auc(scores: dict[str, float]) -> float:
        value = roc_auc([scores[c] for c in ids], labels)
        return round(value, 4) if value is not None else float("nan")

    return Pair(
        cutoff_text,
        horizon,
        len(ids),
        round(sum(labels) / len(ids), 4),
        auc(live),
        auc(in_process),
        auc(bgnbd),
        auc(recency),
        top_decile_share(live, churned),
        top_decile_share(bgnbd, churned),
        brier_live,
        brier_bgnbd,
    )


async def replay(customers: int | None, seed: int = 23) -> dict[str, Any]:
    bought = purchases()
    if customers is not None and customers < len(bought):
        chosen = random.Random(seed).sample(sorted(bought), customers)
        bought = {c: bought[c] for c in chosen}
    history = {c: [at for at, _ in p] for c, p in bought.items()}
    phases: dict[str, float] = {}
    out: dict[str, Any] = {
        "customers": len(bought),
        "purchases": sum(len(p) for p in bought.values()),
    }
    started = time.perf_counter()
    async with running_platform("churn_replay") as platform:
        phases["start"] = round(time.perf_counter() - started, 1)
        headers = {"Authorization": f"Bearer {token(TENANT)}"}
        async with httpx.AsyncClient(
            base_url=platform.urls["gateway"], headers=headers, timeout=120
        ) as client:
            mark = time.perf_counter()
            await import_customers(client, bought)
            ids = await customer_ids(client)
            phases["customers"] = round(time.perf_counter() - mark, 1)
            mark = time.perf_counter()
            out["orders_imported"] = await import_orders(client, bought, ids)
            phases["orders"] = round(time.perf_counter() - mark, 1)
            mark = time.perf_counter()
            await settle(client, [s for s in platform.urls if s != "gateway"])
            phases["settle"] = round(time.perf_counter() - mark, 1)
            pairs: list[Pair] = []
            for cutoff_text in CUTOFFS:
                mark = time.perf_counter()
                order, probability = await live_ranking(client, churn_quality._day(cutoff_text))
                phases[f"ranking {cutoff_text}"] = round(time.perf_counter() - mark, 1)
                for horizon in HORIZONS:
                    pair = judge(history, cutoff_text, horizon, order, ids, probability)
                    print(row(pair), flush=True)
                    pairs.append(pair)
            mark = time.perf_counter()
            out["kept_pages"] = await kept_pages(client)
            phases["kept pages"] = round(time.perf_counter() - mark, 1)
    phases["total"] = round(time.perf_counter() - started, 1)
    out["phases_seconds"] = phases
    out["pairs"] = [asdict(p) for p in pairs]
    out["mean"] = {
        key: round(float(np.mean([getattr(p, key) for p in pairs])), 4)
        for key in ("live", "in_process", "bgnbd", "days_since")
    }
    for key in ("brier_live", "brier_bgnbd"):
        found = [getattr(p, key) for p in pairs if getattr(p, key) is not None]
        out["mean"][key] = round(float(np.mean(found)), 4) if found else None
    return out


HEADER = (
    "| cutoff | horizon | customers | bought nothing | live (gateway) | in-process | BG/NBD "
    "| days since | top decile: live | top decile: BG/NBD | Brier: live | Brier: BG/NBD |\n"
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
)


def row(p: Pair) -> str:
    return (
        f"| {p.cutoff} | {p.horizon_days} d | {p.customers:,} | {p.bought_nothing:.1%} | "
        f"**{p.live:.4f}** | {p.in_process:.4f} | {p.bgnbd:.4f} | {p.days_since:.4f} | "
        f"{p.top_decile_live:.1%} | {p.top_decile_bgnbd:.1%} | "
        f"{_or_dash(p.brier_live)} | {_or_dash(p.brier_bgnbd)} |"
    )


def _or_dash(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=None, help="a random sample")
    parser.add_argument("--json", default="")
    args = parser.parse_args(argv)
    print(HEADER, flush=True)
    out = asyncio.run(replay(args.customers))
    print(json.dumps({k: v for k, v in out.items() if k != "pairs"}, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
