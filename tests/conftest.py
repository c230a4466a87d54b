"""The platform as `make run` starts it (embedded broker, SQLite files), on free ports."""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url

from libs.platform.broker import free_port
from libs.platform.cli import (
    PlatformProcess,
    create_postgres_databases,
    platform_processes,
    service_database_url,
)
from services.bootstrap import SERVICES

TEST_PLATFORM_ENV = {
    "WEBHOOK_ALLOW_INSECURE_TARGETS": "true",
    "WEBHOOK_POLL_SECONDS": "0.1",
    # Four connections a service process (32 for the platform, not make run's 80): the
    # suite's other workers share the same PostgreSQL server and its 100 connections.
    "DATABASE_POOL_SIZE": "4",
    # Four test workers on two cores: an answer can take longer than production's 10 s.
    # On SQLite a write may wait up to the 30 s busy timeout for the file's lock, and a
    # request can write twice (a customer learnt, then the order): twice that, and more.
    "UPSTREAM_READ_TIMEOUT_SECONDS": "75",
    # A service still building its first OpenAPI document when the gateway asks (1 s
    # probe) is cached as unavailable for production's 30 s: merged_openapi() then
    # waited that long on a busy machine. The tests' gateway asks again after a second.
    "OPENAPI_CACHE_SECONDS": "1",
}
# The tests' own clients wait longer than the gateway waits for a service: a slow
# answer is then the gateway's 504, never the client giving up first.
CLIENT_TIMEOUT = 90.0


@dataclass(frozen=True)
class RunningPlatform:
    urls: dict[str, str]
    processes: dict[str, subprocess.Popen[bytes]]
    logs: Path
    # The broker's address, for tests that publish as a service not built yet would.
    bootstrap: str = ""
    # How each process was started, so a test that stops one can start it again.
    commands: dict[str, PlatformProcess] = field(default_factory=dict)

    @property
    def gateway(self) -> str:
        return self.urls["gateway"]

    def stop(self, name: str) -> None:
        process = self.processes[name]
        process.terminate()
        process.wait(timeout=15)

    def start(self, name: str) -> None:
        """Start a stopped service again, as it was: the platform is shared by every
        end-to-end module of the session, so a test that stops a service restores it."""
        self.processes[name] = _spawn(self.commands[name], self.logs)
        _wait_healthy(name, self.urls[name], self.processes[name], self.logs / f"{name}.log")


def _spawn(process: PlatformProcess, workdir: Path) -> subprocess.Popen[bytes]:
    log = workdir / f"{process.name}.log"
    return subprocess.Popen(
        process.command,
        env=process.env,
        cwd=workdir,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


def _wait_healthy(name: str, url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    # Generous: on a busy machine importing the services alone can take a minute.
    deadline = time.monotonic() + 180
    # One client for the whole wait: each new one loads the CA bundle (about 40 ms of
    # CPU, far more on a loaded machine) though these are plain HTTP calls.
    with httpx.Client(timeout=5) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"{url} exited early:\n{log.read_text()[-3000:]}")
            try:
                answer = client.get(f"{url}/livez")
                # The service itself, not another process on its port.
                if answer.status_code == 200 and answer.json().get("service") == name:
                    return
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.2)
    raise TimeoutError(f"{url} not healthy:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def platform_database(request: pytest.FixtureRequest) -> Iterator[str]:
    """The platform's DATABASE_URL: SQLite files (the embedded default), or a PostgreSQL
    server on which every service gets its own fresh database, dropped afterwards.

    Session-wide: one platform per database for every end-to-end module (each module
    works in its own tenant), since starting seven services is the suite's dearest step."""
    if request.param == "sqlite":
        yield ""
        return
    server: str = request.getfixturevalue("postgres_server")
    base = make_url(server).set(database=f"crm_e2e_{uuid.uuid4().hex[:8]}")
    url = base.render_as_string(hide_password=False)
    databases = [service_database_url(url, service.name) for service in SERVICES]
    asyncio.run(create_postgres_databases(databases))
    try:
        yield url
    finally:
        asyncio.run(_drop_databases(server, databases))


async def _drop_databases(server: str, urls: list[str]) -> None:
    admin = await asyncpg.connect(server)
    try:
        for url in urls:
            await admin.execute(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture(scope="session")
def platform(
    tmp_path_factory: pytest.TempPathFactory, platform_database: str
) -> Iterator[RunningPlatform]:
    with running_platform(tmp_path_factory.mktemp("platform"), platform_database) as started:
        yield started


@contextmanager
def running_platform(
    workdir: Path, database_url: str, env: dict[str, str] | None = None
) -> Iterator[RunningPlatform]:
    """Every service, the gateway and the broker on free ports, as `make run` starts
    them, with the tests' settings and ``env`` on top; all stopped on the way out."""
    broker_port = free_port()
    ports = {service.name: free_port() for service in SERVICES}
    started: dict[str, subprocess.Popen[bytes]] = {}
    commands: dict[str, PlatformProcess] = {}
    try:
        for process in platform_processes(
            SERVICES,
            database_url=database_url,
            bootstrap=f"127.0.0.1:{broker_port}",
            ports=ports,
            broker_port=broker_port,
        ):
            # Receivers in the tests listen on 127.0.0.1 over plain HTTP.
            process.env.update(TEST_PLATFORM_ENV)
            process.env.update(env or {})
            commands[process.name] = process
            started[process.name] = _spawn(process, workdir)
            if process.name == "broker":
                time.sleep(0.5)
        urls = {name: f"http://127.0.0.1:{ports[name]}" for name in started if name != "broker"}
        for name, url in urls.items():
            _wait_healthy(name, url, started[name], workdir / f"{name}.log")
        yield RunningPlatform(urls, started, workdir, f"127.0.0.1:{broker_port}", commands)
    finally:
        for process in started.values():
            if process.poll() is None:
                process.terminate()
        for process in started.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """A platform stops as soon as the tests that use it have run, not at the end of the
    session: its eight idle services keep polling the broker (about half a core), and
    the worker that ran its tests goes on with other files (docs/decisions/0090). A
    later test that asks for it again gets a new one, as pytest does for a new param."""
    yield
    if nextitem is None or "platform" in getattr(nextitem, "fixturenames", ()):
        return
    if not isinstance(item, pytest.Function) or "platform" not in item.fixturenames:
        return
    for fixturedef in item._fixtureinfo.name2fixturedefs.get("platform", ()):
        # What pytest itself calls when a test asks for another param of a fixture.
        fixturedef.finish(item._request)  # type: ignore[arg-type]


def merged_openapi(gateway: str, timeout: float = 180) -> dict[str, Any]:
    """The gateway's merged document once every service is in it: on a busy machine a
    service's document can miss the gateway's first fetches."""
    merged: dict[str, Any] = {}
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=30) as client:
        while time.monotonic() < deadline:
            merged = client.get(f"{gateway}/openapi.json").json()
            upstreams = merged.get("x-upstreams", {})
            if all(entry.get("status") == "available" for entry in upstreams.values()):
                return merged
            time.sleep(1)
    missing = [
        n for n, e in merged.get("x-upstreams", {}).items() if e.get("status") != "available"
    ]
    pytest.fail(f"services missing from the gateway's document: {missing}")


def wait_until_caught_up(gateway: str, timeout: float = 300) -> None:
    """Until every service's outbox is published and every projection has read its
    topics to the end (the services' ops reports): a test that floods the shared
    platform (fuzzing) leaves it as it found it, so that the tests after it do not
    wait out its backlog."""
    from libs.auth import issue_token
    from libs.platform.settings import ServiceSettings

    token = issue_token(ServiceSettings().auth(), "ops@tests", "ops-tests", ["admin"])
    headers = {"Authorization": f"Bearer {token}"}
    services = [s.name for s in SERVICES if s.name != "gateway"]
    behind: dict[str, object] = {}
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=gateway, headers=headers, timeout=30) as client:
        while time.monotonic() < deadline:
            behind = {}
            for name in services:
                try:
                    answer = client.get(f"/api/v1/ops/{name}")
                except httpx.HTTPError as failed:
                    behind[name] = repr(failed)
                    continue
                if answer.status_code != 200:
                    behind[name] = answer.status_code
                    continue
                report = answer.json()
                waiting = (report["outbox"] or {}).get("events", 0)
                lagging = [p["name"] for p in report["projections"] if p["lag_events"] != 0]
                if waiting or lagging:
                    behind[name] = {"outbox": waiting, "lagging": lagging}
            if not behind:
                return
            time.sleep(1)
    pytest.fail(f"the platform did not catch up in {timeout:.0f} s: {behind}")


def _poll(probe: Callable[[], Any], seconds: float) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        found = probe()
        if found or time.monotonic() >= deadline:
            return found
        time.sleep(0.2)


def eventually(
    gateway: str, what: str | Callable[[], str], probe: Callable[[], Any], timeout: float = 90
) -> Any:
    """``probe()`` until it answers something truthy. Events reach a projection
    asynchronously, behind whatever the tests before published on the shared platform,
    and on a slow machine that backlog can outlast any fixed wait: when ``timeout`` is up
    this waits for the platform to catch up (every outbox published, every projection at
    its topics' end) and probes once more, so a failure is the feature's, not the
    machine's."""
    found = _poll(probe, timeout)
    if found:
        return found
    wait_until_caught_up(gateway)
    found = _poll(probe, 15)
    if not found:
        said = what if isinstance(what, str) else what()
        pytest.fail(f"{said} never happened, though the platform had caught up")
    return found


def body_until(
    client: httpx.Client,
    path: str,
    shown: Callable[[Any], bool],
    params: dict[str, str] | None = None,
    timeout: float = 90,
) -> Any:
    """The body of ``GET path`` through the gateway once it answers 200 with what
    ``shown`` looks for (see ``eventually``)."""
    last: list[Any] = [None]

    def probe() -> Any:
        try:
            response = client.get(path, params=params)
        except httpx.TimeoutException as slow:  # a busy machine: not yet, not a failure
            last[0] = repr(slow)
            return None
        if response.status_code != 200:
            last[0] = f"{response.status_code} {response.text[:200]}"
            return None
        last[0] = response.json()
        return last[0] if shown(last[0]) else None

    return eventually(
        str(client.base_url).rstrip("/"),
        lambda: f"GET {path} showing what was expected (last: {last[0]})",
        probe,
        timeout,
    )


def view_until(
    client: httpx.Client, customer_id: str, shown: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """The 360 view once ``shown`` (other services' events reach it asynchronously)."""
    found: dict[str, Any] = body_until(client, f"/api/v1/customers/{customer_id}/360", shown)
    return found
