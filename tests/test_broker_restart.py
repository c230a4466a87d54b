"""Fault injection: the broker and the projector are killed (SIGKILL) under a steady
write load, and every registration the contacts service accepted reaches the 360
view within a bound, once.

Real processes as `crm serve` runs them (contacts with its outbox relay, customer360
with its projector), PostgreSQL, and the bundled broker, which restarts empty.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from libs.auth import issue_token
from libs.platform.broker import EmbeddedBroker, free_port
from libs.platform.settings import ServiceSettings
from testing.fixtures import fresh_database

REGISTERED = "crm.contacts.customer_registered.v1"


class ServiceProcess:
    """One service as `crm serve` starts it; killed with SIGKILL, started again."""

    def __init__(self, name: str, env: dict[str, str], log: Path) -> None:
        self.name = name
        self.port = int(env["HTTP_PORT"])
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = env
        self.log = log
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "services.bootstrap",
                "serve",
                self.name,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        async with httpx.AsyncClient(timeout=1) as client:
            while time.monotonic() < deadline:
                if self.process.returncode is not None:
                    raise RuntimeError(f"{self.name} exited:\n{self.log.read_text()[-3000:]}")
                try:
                    if (await client.get(f"{self.url}/healthz")).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
        raise TimeoutError(f"{self.name} not healthy:\n{self.log.read_text()[-3000:]}")

    async def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGKILL)
            await self.process.wait()

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), timeout=15)
            except TimeoutError:
                await self.kill()


@dataclass
class Platform:
    broker: EmbeddedBroker
    contacts: ServiceProcess
    customer360: ServiceProcess
    headers: dict[str, str]


@pytest_asyncio.fixture
async def platform(postgres_server: str, tmp_path: Path) -> AsyncIterator[Platform]:
    async with AsyncExitStack() as databases:  # dropped last, once the services stopped
        urls = {
            s: await databases.enter_async_context(
                fresh_database(postgres_server, prefix=f"crm_fault_{s}")
            )
            for s in ("contacts", "customer360")
        }
        broker = EmbeddedBroker(log_path=tmp_path / "broker.log")
        broker.start()
        common = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
            "KAFKA_PARTITIONS": "3",
            "PYTHONUNBUFFERED": "1",
        }
        services = {
            s: ServiceProcess(
                s,
                {**common, "DATABASE_URL": urls[s], "HTTP_PORT": str(free_port())},
                tmp_path / f"{s}.log",
            )
            for s in urls
        }
        services["customer360"].env["LAG_REFRESH_SECONDS"] = "0.5"
        token = issue_token(ServiceSettings().auth(), "ops@acme", "acme", ["admin"])
        try:
            for service in services.values():
                await service.start()
            yield Platform(
                broker,
                services["contacts"],
                services["customer360"],
                {"Authorization": f"Bearer {token}"},
            )
        finally:
            for service in services.values():
                await service.stop()
            broker.stop()


@dataclass
class Load:
    """Registrations at a steady rate; the ids of those answered 201."""

    platform: Platform
    per_second: float
    accepted: list[str] = field(default_factory=list)
    refused: int = 0
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        interval = 1 / self.per_second
        async with httpx.AsyncClient(headers=self.platform.headers, timeout=5) as client:
            n = 0
            next_at = time.monotonic()
            while not self.stop.is_set():
                n += 1
                try:
                    response = await client.post(
                        f"{self.platform.contacts.url}/api/v1/customers",
                        json={
                            "kind": "person",
                            "name": f"Customer {n}",
                            "email": f"c{n}.{uuid.uuid4().hex[:6]}@example.com",
                        },
                    )
                except httpx.HTTPError:
                    self.refused += 1  # contacts is down: not accepted, nothing to find
                else:
                    if response.status_code == 201:
                        self.accepted.append(response.json()["id"])
                    else:
                        self.refused += 1
                next_at += interval
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))


async def _pause(seconds: float) -> None:
    await asyncio.sleep(seconds)


async def all_readable(
    platform: Platform, ids: list[str], bound: float
) -> dict[str, dict[str, Any]]:
    """Every id's 360 view, polled until all are there or ``bound`` seconds passed."""
    found: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + bound
    async with httpx.AsyncClient(headers=platform.headers, timeout=5) as client:
        while True:
            for customer_id in [i for i in ids if i not in found]:
                try:
                    response = await client.get(
                        f"{platform.customer360.url}/api/v1/customers/{customer_id}/360"
                    )
                except httpx.HTTPError:
                    continue
                if response.status_code == 200:
                    found[customer_id] = response.json()
            if len(found) == len(ids) or time.monotonic() > deadline:
                return found
            await asyncio.sleep(0.5)


@dataclass(frozen=True)
class Scenario:
    per_second: float
    # Seconds of load between faults; faults: "broker", "projector" or "contacts".
    steps: tuple[tuple[float, str], ...]
    tail_seconds: float
    bound_seconds: float


async def run_scenario(platform: Platform, scenario: Scenario) -> None:
    load = Load(platform, scenario.per_second)
    writer = asyncio.create_task(load.run())
    try:
        for seconds, fault in scenario.steps:
            await _pause(seconds)
            if fault == "broker":
                platform.broker.stop()  # SIGKILL: the memory broker loses every topic
                await _pause(1.0)
                platform.broker.start()
            elif fault == "projector":
                await platform.customer360.kill()
                await platform.customer360.start()
            elif fault == "contacts":
                await platform.contacts.kill()
                await platform.contacts.start()
        await _pause(scenario.tail_seconds)
    finally:
        load.stop.set()
        await writer
    loaded_at = time.monotonic()

    views = await all_readable(platform, load.accepted, scenario.bound_seconds)
    took = time.monotonic() - loaded_at

    missing = [i for i in load.accepted if i not in views]
    assert len(load.accepted) >= scenario.per_second * 3, "the load must have run"
    assert not missing, f"{len(missing)} of {len(load.accepted)} accepted never readable"
    for customer_id, view in views.items():
        ids = [line["event_id"] for line in view["timeline"]]
        assert len(ids) == len(set(ids)), f"{customer_id}: a timeline line twice"
        assert [line["type"] for line in view["timeline"]].count(REGISTERED) == 1
    print(f"{len(load.accepted)} accepted, all readable {took:.1f} s after the load ended")

    async with httpx.AsyncClient(headers=platform.headers, timeout=10) as client:
        status = (
            await client.get(f"{platform.customer360.url}/api/v1/projections/customer360/status")
        ).json()
    assert status["stalled"] is False
    assert status["lag_events"] == 0


async def test_a_broker_and_a_projector_killed_under_load_lose_no_registration(
    platform: Platform,
) -> None:
    await run_scenario(
        platform,
        Scenario(
            per_second=20,
            steps=((3.0, "broker"), (3.0, "projector")),
            tail_seconds=2.0,
            bound_seconds=45.0,
        ),
    )


@pytest.mark.slow
async def test_repeated_kills_of_broker_projector_and_contacts_under_load_lose_nothing(
    platform: Platform,
) -> None:
    await run_scenario(
        platform,
        Scenario(
            per_second=50,
            steps=(
                (10.0, "broker"),
                (8.0, "projector"),
                (8.0, "contacts"),
                (8.0, "broker"),
                (4.0, "projector"),
                (10.0, "broker"),
            ),
            tail_seconds=10.0,
            bound_seconds=90.0,
        ),
    )
