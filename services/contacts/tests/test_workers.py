"""Two worker processes of contacts behind one port (``crm serve --workers 2``): both
answer, /metrics adds up what both did, and one relay publishes each event once."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from sqlalchemy import select

from libs.events.kafka import KafkaSettings
from libs.events.store import events
from libs.platform.broker import free_port
from libs.platform.db import create_engine
from services.contacts.settings import Settings
from services.contacts.tests.conftest import SECRET, Api, read_topic

REGISTER = ("POST", "/api/v1/customers", "201")

# prometheus_client leaves it unannotated: (key, value, timestamp, position) per sample.
read_all_values_from_file: Callable[[str], Iterator[tuple[str, float, float, int]]] = (
    MmapedDict.read_all_values_from_file
)


def per_worker(metrics_dir: Path, metric: str, labels: dict[str, str]) -> Counter[str]:
    """A counter's value in each worker's own file (keyed by the worker's pid)."""
    found: Counter[str] = Counter()
    for path in metrics_dir.glob("counter_*.db"):
        pid = path.stem.removeprefix("counter_")
        for key, value, _, _ in read_all_values_from_file(str(path)):
            _, sample, sample_labels, _ = json.loads(key)
            if sample == f"{metric}_total" and labels.items() <= sample_labels.items():
                found[pid] += int(value)
    return found


def exposed(body: str, metric: str, labels: dict[str, str]) -> float:
    return sum(
        s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
        if s.name == f"{metric}_total" and labels.items() <= s.labels.items()
    )


@pytest.fixture(params=["postgresql", "sqlite"])
def served(
    request: pytest.FixtureRequest, kafka: KafkaSettings, tmp_path: Path
) -> Iterator[tuple[str, str, Path]]:
    """``crm serve contacts --workers 2``: its URL, database and metrics folder."""
    if request.param == "postgresql":
        database = str(request.getfixturevalue("pg_url"))
    else:
        database = f"sqlite+aiosqlite:///{tmp_path / 'contacts.db'}"
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database,
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "KAFKA_PARTITIONS": str(kafka.partitions),
        "JWT_SECRET": SECRET,
        "LOG_LEVEL": "WARNING",
        "TMPDIR": str(tmp_path),  # where the service makes its metrics folder
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    log = tmp_path / "contacts.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "services.bootstrap", "serve", "contacts",
             "--workers", "2", "--port", str(port)],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        # Migrations, then two workers: a minute or more on a loaded machine.
        deadline = time.monotonic() + 180
        while True:
            assert process.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        (metrics_dir,) = tmp_path.glob("crm-contacts-metrics-*")
        yield url, database, metrics_dir
    finally:
        process.terminate()
        # A graceful stop (two workers, the relay): slow on a loaded machine, not hung.
        process.wait(timeout=120)
    assert not metrics_dir.exists()  # a fresh folder per start, removed at the end


async def test_two_workers_share_the_port_the_metrics_and_one_relay(
    served: tuple[str, str, Path], kafka: KafkaSettings
) -> None:
    url, database, metrics_dir = served
    registered = 0
    # A connection per request, so the kernel hands them to either worker; go on
    # until both have answered registrations.
    async with httpx.AsyncClient(
        base_url=url, limits=httpx.Limits(max_keepalive_connections=0), timeout=30
    ) as client:
        api = Api(client, settings=_settings())
        while len(per_worker(metrics_dir, "crm_http_requests", _labels())) < 2:
            assert registered < 400, "one worker answered every request"
            await asyncio.gather(
                *(api.register(email=f"w{registered + i}@example.com") for i in range(10))
            )
            registered += 10

        answered = per_worker(metrics_dir, "crm_http_requests", _labels())
        body = (await client.get("/metrics")).text

    assert sum(answered.values()) == registered and len(answered) == 2
    assert exposed(body, "crm_http_requests", _labels()) == registered

    engine = create_engine(database)
    try:
        async with engine.connect() as conn:
            stored = set((await conn.execute(select(events.c.event_id))).scalars())
    finally:
        await engine.dispose()
    published = await read_topic(kafka, until=lambda seen: len(seen) >= len(stored))
    ids = Counter(p.headers["ce_id"].decode() for p in published)
    assert set(ids) == stored and max(ids.values()) == 1  # each event once
    # The relay counts a batch once the broker acknowledged it and the outbox rows are
    # gone, a moment after consumers can read it: wait for the count, not the topic.
    deadline = time.monotonic() + 90
    publishers = per_worker(metrics_dir, "crm_events_published", {})
    while sum(publishers.values()) < len(stored) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        publishers = per_worker(metrics_dir, "crm_events_published", {})
    assert len(+publishers) == 1 and sum(publishers.values()) == len(stored)


def _labels() -> dict[str, str]:
    method, route, status = REGISTER
    return {"method": method, "route": route, "status": status}


def _settings() -> Settings:
    return Settings(jwt_secret=SecretStr(SECRET))
