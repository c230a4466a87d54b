"""`crm run` supervises its processes (docs/decisions/0095): one killed outright (SIGKILL)
is started again, its uvicorn workers go with it, and the others keep serving.

The platform's processes as `crm run` builds them (``platform_processes``), under the
same supervisor `crm run` starts (``Supervisor``), on free ports and SQLite files.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from libs.auth import issue_token
from libs.platform.broker import free_port
from libs.platform.cli import platform_processes
from libs.platform.settings import ServiceSettings
from libs.platform.supervision import Supervisor
from services.bootstrap import SERVICES
from tests.conftest import TEST_PLATFORM_ENV

TENANT = "supervised"
REGISTERED = "crm.contacts.customer_registered.v1"
# Requests a client keeps in flight at most: the gateway refuses a caller past 64.
IN_FLIGHT = 32


@dataclass
class Supervised:
    supervisor: Supervisor
    urls: dict[str, str]
    log: Path

    def live(self, name: str, timeout: float = 2) -> bool:
        """Whether the service itself (not another process on its port) answers /livez."""
        try:
            answer = httpx.get(f"{self.urls[name]}/livez", timeout=timeout)
            return answer.status_code == 200 and answer.json().get("service") == name
        except (httpx.HTTPError, ValueError):
            return False

    def wait_live(self, name: str, seconds: float) -> float:
        """Seconds until ``name`` answers /livez; fails after ``seconds``."""
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            if self.live(name):
                return time.monotonic() - started
            time.sleep(0.2)
        pytest.fail(f"{name} did not answer within {seconds:.0f} s:\n{self.tail()}")

    def kill(self, name: str) -> int:
        """SIGKILL the service's process (its parent, if it has workers); its pid."""
        pid = self.supervisor.pid(name)
        assert pid, f"{name} is not running"
        os.kill(pid, signal.SIGKILL)
        return pid

    def started_again(self, name: str, killed: int, seconds: float) -> float:
        """Seconds until supervisord runs ``name`` in a new process that answers and
        has stayed up (RUNNING: past ``startsecs``)."""
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            again = self.supervisor.pid(name) not in (0, killed)
            if again and self.supervisor.state(name) == "RUNNING" and self.live(name):
                return time.monotonic() - started
            time.sleep(0.2)
        pytest.fail(f"{name} was not started again within {seconds:.0f} s:\n{self.tail()}")

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


@contextmanager
def supervised_platform(
    tmp_path: Path, names: list[str], workers: Mapping[str, int], database_url: str = ""
) -> Iterator[Supervised]:
    broker_port = free_port()
    ports = {name: free_port() for name in names}
    processes = platform_processes(
        [s for s in SERVICES if s.name in names],
        database_url=database_url or f"sqlite+aiosqlite:///{tmp_path}/crm.db",
        bootstrap=f"127.0.0.1:{broker_port}",
        ports=ports,
        broker_port=broker_port,
        workers=workers,
    )
    for process in processes:
        process.env.update(TEST_PLATFORM_ENV)
    supervisor = Supervisor(processes, tmp_path / "supervisor", workdir=tmp_path)
    log = tmp_path / "supervisord.out"
    with log.open("ab") as out:
        supervisor.start(stdout=out, stderr=out)
    platform = Supervised(supervisor, {n: f"http://127.0.0.1:{p}" for n, p in ports.items()}, log)
    try:
        for name in names:
            platform.wait_live(name, 120)
        yield platform
    finally:
        supervisor.stop()


def workers_of(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_a_killed_service_is_started_again_while_another_keeps_answering(
    tmp_path: Path,
) -> None:
    with supervised_platform(
        tmp_path, ["contacts", "customer360"], {"contacts": 2, "customer360": 1}
    ) as platform:
        answers: list[bool] = []
        done = threading.Event()

        def keep_asking() -> None:
            while not done.is_set():
                # A slow answer on a busy machine is still an answer.
                answers.append(platform.live("customer360", timeout=10))
                done.wait(0.2)

        asker = threading.Thread(target=keep_asking)
        asker.start()
        try:
            killed = platform.kill("contacts")
            orphans = workers_of(killed)
            back_after = platform.started_again("contacts", killed, 45)
        finally:
            done.set()
            asker.join()

        assert back_after < 45
        assert len(answers) > 5 and all(answers), "customer360 stopped answering"
        # The killed parent's uvicorn workers ended with it: they would hold the port.
        deadline = time.monotonic() + 25
        while any(running(w) for w in orphans) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not [w for w in orphans if running(w)]


# --- the slow scenario: projectors killed under load -----------------------------------


@dataclass
class Shop:
    """Registrations through the gateway at a steady rate, each followed by an order."""

    gateway: str
    headers: dict[str, str]
    per_second: float
    total: int = 10_000
    customers: list[str] = field(default_factory=list)
    # What the refused requests were answered (an HTTP status, or the client's error).
    refused: Counter[str] = field(default_factory=Counter)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def _one(self, client: httpx.AsyncClient, n: int) -> None:
        try:
            registered = await client.post(
                "/api/v1/customers",
                json={"kind": "person", "name": f"Shopper {n}",
                      "email": f"s{n}.{uuid.uuid4().hex[:6]}@example.com"},
            )
            if registered.status_code != 201:
                self.refused[f"registration {registered.status_code}"] += 1
                return
            customer_id = registered.json()["id"]
            placed = await client.post(
                "/api/v1/orders",
                json={"customer_id": customer_id, "currency": "CNY", "total": self.total},
                headers={"Idempotency-Key": f"order-{customer_id}"},
            )
        except httpx.HTTPError as failed:
            self.refused[type(failed).__name__] += 1
            return
        if placed.status_code == 201:
            self.customers.append(customer_id)
        else:
            self.refused[f"order {placed.status_code} {placed.text[:200]}"] += 1

    async def run(self) -> None:
        async with httpx.AsyncClient(
            base_url=self.gateway, headers=self.headers, timeout=30
        ) as client:
            pending: set[asyncio.Task[None]] = set()
            n = 0
            next_at = time.monotonic()
            while not self.stop.is_set():
                n += 1
                if len(pending) >= IN_FLIGHT:  # within the gateway's share per caller
                    await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                task = asyncio.create_task(self._one(client, n))
                pending.add(task)
                task.add_done_callback(pending.discard)
                next_at += 1 / self.per_second
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            await asyncio.gather(*pending)


async def _earned_once(
    client: httpx.AsyncClient, customers: list[str], points: int, bound: float
) -> list[str]:
    """The customers not yet seen in the 360 view with their order's points, once,
    after ``bound`` seconds of asking."""
    waiting = set(customers)
    deadline = time.monotonic() + bound
    limit = asyncio.Semaphore(8)

    async def seen(customer_id: str) -> None:
        async with limit:
            view = await client.get(f"/api/v1/customers/{customer_id}/360")
            ledger = await client.get(f"/api/v1/customers/{customer_id}/loyalty/ledger")
        if view.status_code != 200 or ledger.status_code != 200:
            return
        timeline = [line["type"] for line in view.json()["timeline"]]
        assert timeline.count(REGISTERED) == 1, customer_id
        earned = [line["points"] for line in ledger.json()["lines"]]
        assert earned in ([], [points]), f"{customer_id}: points {earned}"
        if earned == [points] and (view.json()["loyalty"] or {}).get("balance") == points:
            waiting.discard(customer_id)

    while waiting and time.monotonic() < deadline:
        await asyncio.gather(*(seen(c) for c in list(waiting)), return_exceptions=False)
        if waiting:
            await asyncio.sleep(1)
    return sorted(waiting)


@pytest.mark.slow
def test_customer360_then_loyalty_killed_under_load_lose_nothing(
    tmp_path: Path, platform_database: str
) -> None:
    """On SQLite files and on PostgreSQL (a database per service, fresh)."""
    names = ["gateway", "contacts", "pipeline", "loyalty", "customer360"]
    token = issue_token(ServiceSettings().auth(), "ops@supervised", TENANT, ["admin"])
    headers = {"Authorization": f"Bearer {token}"}
    one_each = dict.fromkeys(names, 1)
    with supervised_platform(tmp_path, names, one_each, platform_database) as platform:

        async def scenario() -> None:
            shop = Shop(platform.urls["gateway"], headers, per_second=30)
            load = asyncio.create_task(shop.run())
            for victim in ("customer360", "loyalty"):
                await asyncio.sleep(8)
                killed = platform.kill(victim)
                back = await asyncio.to_thread(platform.started_again, victim, killed, 30)
                print(f"{victim}: answering again {back:.1f} s after SIGKILL")
            await asyncio.sleep(5)
            shop.stop.set()
            await load
            assert len(shop.customers) >= 300, f"the load ran (refused: {shop.refused})"
            async with httpx.AsyncClient(
                base_url=platform.urls["gateway"], headers=headers, timeout=30
            ) as client:
                started = time.monotonic()
                missing = await _earned_once(client, shop.customers, shop.total // 100, 60)
            assert not missing, f"{len(missing)} of {len(shop.customers)} never complete"
            print(f"{len(shop.customers)} customers, all complete after "
                  f"{time.monotonic() - started:.1f} s (refused: {dict(shop.refused)})")

        asyncio.run(scenario())
