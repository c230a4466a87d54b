"""`make bench` still runs: every benchmark of ``bench.run.BENCHMARKS`` once, at the tiny
plan (``Plan.tiny``: one repetition, the smallest sizes), through the entry point `make
bench` uses (``bench.run.main``), on the real PostgreSQL and a real broker as the
benchmarks start them.

The benchmarks reach into the services (their read models, reactions, migrations, the
platform's processes); a refactor that breaks one fails here instead of at the next
`make bench`. The figures of a tiny run mean nothing, but each must be a positive
number: a run that measured nothing (every request refused, no event applied) fails.

Three kinds of benchmark cost their processes' start-up whatever the plan, and are
``slow`` (`make test-slow`): those that start the whole platform over HTTP (eight
services and a broker, then a warm-up until views come steadily: minutes on a loaded
machine), e2e (a relay and a projector process for each of its two rates, each
importing the platform) and floor (two uvicorn processes). What they reach into
without running is checked here at once: every bench module imports, the library
methods the benchmarks override or call by a private name still exist, and tickets'
part b (the SLA due search, which needs no platform) runs tiny on its own."""

from __future__ import annotations

import importlib
import inspect
import json
import math
import pkgutil
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import bench
from bench import common, tickets
from bench import run as bench_run
from libs.events.outbox import OutboxRelay
from libs.events.projection import ProjectionRunner

# Each starts every service of services/bootstrap.py as its own process (bench/http.py).
WHOLE_PLATFORM = {"contacts", "gateway", "pipeline", "tickets", "tracing", "idle"}
# Python processes of their own: e2e's relay and projector, floor's two uvicorn apps.
OWN_PROCESSES = {"e2e", "floor"}
SLOW = WHOLE_PLATFORM | OWN_PROCESSES

# Library methods benchmarks override or call although not public (bench/e2e.py,
# bench/relay.py, bench/projector.py): renamed, a benchmark would fail or measure nothing.
HOOKS = [(OutboxRelay, "_publish"), (OutboxRelay, "_ensure_producer"),
         (OutboxRelay, "_drop_producer"), (OutboxRelay, "relay_once"), (OutboxRelay, "run"),
         (ProjectionRunner, "_resume"), (ProjectionRunner, "apply_batch"),
         (ProjectionRunner, "progress"), (ProjectionRunner, "run")]


def _cases() -> list[Any]:
    return [pytest.param(name, marks=pytest.mark.slow) if name in SLOW else name
            for name in bench_run.BENCHMARKS]


def test_the_slow_benchmarks_are_known() -> None:
    assert SLOW <= set(bench_run.BENCHMARKS)
    assert set(bench_run.RUNNERS) == set(bench_run.BENCHMARKS)


def _bench_modules() -> list[str]:
    return sorted(f"bench.{m.name}" for m in pkgutil.iter_modules(bench.__path__))


@pytest.mark.parametrize("module", _bench_modules())
def test_every_bench_module_imports(module: str) -> None:
    """The ones outside BENCHMARKS too (churn_quality, bgnbd, customer360, edge_checks)."""
    importlib.import_module(module)


def test_what_the_benchmarks_reach_into_still_exists() -> None:
    missing = [f"{cls.__name__}.{name}" for cls, name in HOOKS
               if not hasattr(cls, name) and name not in getattr(cls, "__annotations__", {})
               and not _set_in_init(cls, name)]
    # Every private method a benchmark's subclass defines overrides one of its bases'.
    for module in _bench_modules():
        for _, cls in inspect.getmembers(importlib.import_module(module), inspect.isclass):
            if cls.__module__ != module:
                continue
            bases = [b for b in cls.__mro__[1:] if b.__module__.startswith(("libs.", "services."))]
            for name, value in vars(cls).items():
                if (bases and callable(value) and name.startswith("_")
                        and not name.startswith("__")
                        and not any(name in vars(b) for b in bases)):
                    missing.append(f"{module}.{cls.__name__}.{name}")
    # bench/floor.py imports the gateway's upstream client inside its pass-through app.
    if not hasattr(importlib.import_module("services.gateway.proxy"), "UpstreamTransport"):
        missing.append("services.gateway.proxy.UpstreamTransport")
    assert missing == []


def _set_in_init(cls: type, name: str) -> bool:
    """An attribute ``__init__`` sets (``self.progress: ... = {}``)."""
    source = inspect.getsource(vars(cls)["__init__"])
    return re.search(rf"^\s*self\.{name}\b[^=\n]*=", source, re.MULTILINE) is not None


def test_the_tiny_plan_is_no_larger_than_the_quick_one() -> None:
    tiny, quick = bench_run.Plan.tiny().__dict__, bench_run.Plan.quick().__dict__
    assert tiny["reps"] == 1
    assert all(0 < tiny[key] <= quick[key] for key in quick), tiny


async def test_the_tickets_due_search_runs_tiny(postgres_server: str,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Benchmark 10's part b needs no platform: run here even though its part a is slow."""
    monkeypatch.setattr(common, "ADMIN_URL", postgres_server)
    open_tickets = bench_run.Plan.tiny().scheduler_tickets

    search = await tickets.scheduler_search(open_tickets)

    assert search["uses_index"], search["plan"]
    assert search["due"]["found"] == open_tickets // tickets.OVERDUE_EVERY > 0
    assert search["idle"]["found"] == 0
    assert all(_positive(search[label][key]) for label in ("idle", "due")
               for key in ("p50_ms", "p99_ms"))


def _figures(bench: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """What a benchmark reports, by where it sits in the results."""
    for row in bench["rows"]:
        label = " ".join(str(row.get(k, "")) for k in ("test", "system", "mode")).strip()
        rate = next((row[k] for k in ("median_rate", "rate", "achieved_rate") if k in row),
                    None)
        yield f"{label}: rate", rate
        for key in ("median_p50_ms", "p50_ms", "relay_p50_ms", "projector_p50_ms",
                    "append_p50_ms"):
            if key in row:
                yield f"{label}: {key}", row[key]
        for i, run in enumerate(row.get("runs", [])):
            if "rate" in run:
                yield f"{label}: run {i + 1} rate", run["rate"]
    for answer, seconds in bench.get("queries", {}).get("seconds", {}).items():
        yield f"query {answer}: seconds", seconds
    if "scoring" in bench:
        for when in ("end", "year_back"):
            yield f"scoring as of {when}: seconds", bench["scoring"][when]["seconds"]
            yield f"scoring as of {when}: ranked", bench["scoring"][when]["ranked"]
        yield "scoring: customers/s", bench["scoring"]["end"]["customers_per_second"]


def _positive(value: Any) -> bool:
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value) and value > 0)


@pytest.mark.parametrize("name", _cases())
async def test_the_benchmark_runs_tiny(name: str, postgres_server: str, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(common, "ADMIN_URL", postgres_server)
    output = tmp_path / "tiny.json"

    code = await bench_run.main(["--tiny", "--only", name, "--output", str(output)])

    results = json.loads(output.read_text())
    assert results["meta"]["mode"] == "tiny"
    bench = results["benchmarks"][name]
    assert "error" not in bench, bench["error"]
    assert code == 0
    figures = list(_figures(bench))
    assert figures, bench
    assert [(what, value) for what, value in figures if not _positive(value)] == []
    if name == "e2e":
        assert [row["missing"] for row in bench["rows"]] == [0, 0]
    assert (tmp_path / "tiny.md").read_text().startswith("Run ")


@pytest.mark.slow
async def test_the_churn_replay_ranks_through_the_gateway_as_in_process() -> None:
    """bench/churn_replay.py on a small sample: the whole platform, CDNOW imported
    through the gateway, a ranking per cutoff read back. What only the deployed path
    has (loyalty's points for every order, every service feeding the churn projector)
    must not make the live ranking differ from the same code run on orders alone."""
    from bench import churn_replay

    out = await churn_replay.replay(customers=120)

    assert out["orders_imported"] == out["purchases"] > 0
    assert len(out["pairs"]) == len(churn_replay.CUTOFFS) * len(churn_replay.HORIZONS)
    for pair in out["pairs"]:
        assert abs(pair["live"] - pair["in_process"]) <= 0.01, pair
