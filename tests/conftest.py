"""The platform as `make run` starts it (embedded broker, SQLite files), on free ports."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from libs.platform.broker import free_port
from libs.platform.cli import platform_processes
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


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningPlatform]:
    workdir = tmp_path_factory.mktemp("platform")
    broker_port = free_port()
    ports = {service.name: free_port() for service in SERVICES}
    started: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for process in platform_processes(
            SERVICES,
            database_url="",
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
