"""The platform as `make run` starts it (embedded broker, SQLite files), on free ports."""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url

from libs.platform.broker import free_port
from libs.platform.cli import (
    _create_postgres_databases,
    platform_processes,
    service_database_url,
)
from services.bootstrap import SERVICES


@dataclass(frozen=True)
class RunningPlatform:
    urls: dict[str, str]
    processes: dict[str, subprocess.Popen[bytes]]
    logs: Path
    # The broker's address, for tests that publish as a service not built yet would.
    bootstrap: str = ""

    @property
    def gateway(self) -> str:
        return self.urls["gateway"]

    def stop(self, name: str) -> None:
        process = self.processes[name]
        process.terminate()
        process.wait(timeout=15)


def _wait_healthy(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited early:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} not healthy:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def platform_database(request: pytest.FixtureRequest) -> Iterator[str]:
    """The platform's DATABASE_URL: SQLite files (the embedded default), or a PostgreSQL
    server on which every service gets its own fresh database, dropped afterwards."""
    if request.param == "sqlite":
        yield ""
        return
    server: str = request.getfixturevalue("postgres_server")
    base = make_url(server).set(database=f"crm_e2e_{uuid.uuid4().hex[:8]}")
    url = base.render_as_string(hide_password=False)
    databases = [service_database_url(url, service.name) for service in SERVICES]
    asyncio.run(_create_postgres_databases(databases))
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


@pytest.fixture(scope="module")
def platform(
    tmp_path_factory: pytest.TempPathFactory, platform_database: str
) -> Iterator[RunningPlatform]:
    workdir = tmp_path_factory.mktemp("platform")
    broker_port = free_port()
    ports = {service.name: free_port() for service in SERVICES}
    started: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for process in platform_processes(
            SERVICES,
            database_url=platform_database,
            bootstrap=f"127.0.0.1:{broker_port}",
            ports=ports,
            broker_port=broker_port,
        ):
            log = workdir / f"{process.name}.log"
            started[process.name] = subprocess.Popen(
                process.command,
                env=process.env,
                cwd=workdir,
                stdout=log.open("wb"),
                stderr=subprocess.STDOUT,
            )
            if process.name == "broker":
                asyncio.run(asyncio.sleep(0.5))
        urls = {name: f"http://127.0.0.1:{ports[name]}" for name in started if name != "broker"}
        for name, url in urls.items():
            _wait_healthy(url, started[name], workdir / f"{name}.log")
        yield RunningPlatform(urls, started, workdir, f"127.0.0.1:{broker_port}")
    finally:
        for process in started.values():
            if process.poll() is None:
                process.terminate()
        for process in started.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
