"""``crm run`` says "ready" only once every service's /readyz answers 200 (issue 15)."""

from __future__ import annotations

import threading

from libs.platform.broker import free_port
from libs.platform.readiness_watch import http_probe, watch_until_ready

URLS = {"gateway": "http://gw/readyz", "customer360": "http://c360/readyz"}


def test_ready_is_said_once_and_only_after_the_last_service_is_ready() -> None:
    # customer360's projector joins its group on the fourth probe.
    probes: dict[str, int] = {}

    def probe(url: str) -> int:
        probes[url] = probes.get(url, 0) + 1
        return 200 if url == URLS["gateway"] or probes[url] >= 4 else 503

    said: list[str] = []
    now = [0.0]

    def clock() -> float:
        now[0] += 1.0
        return now[0]

    stop = threading.Event()
    ready = watch_until_ready(
        URLS, "http://127.0.0.1:8000", say=said.append, stop=stop, probe=probe,
        every_seconds=0, remind_every_seconds=2.5, clock=clock,
    )

    assert ready
    assert probes[URLS["customer360"]] == 4
    assert [line.split(":")[0] for line in said] == ["not ready yet", "ready"]
    assert "customer360" in said[0] and "gateway" not in said[0]
    assert "crm token" in said[-1] and "http://127.0.0.1:8000/docs" in said[-1]


def test_nothing_is_said_when_stopped_before_ready() -> None:
    said: list[str] = []
    stop = threading.Event()
    stop.set()

    assert not watch_until_ready(URLS, "http://gw", say=said.append, stop=stop, probe=lambda _: 503)
    assert said == []


def test_a_service_that_does_not_answer_is_not_ready() -> None:
    assert http_probe(f"http://127.0.0.1:{free_port()}/readyz") is None


def test_ready_says_that_crashed_processes_restart_and_where_to_see_them() -> None:
    said: list[str] = []
    status = ".venv/bin/supervisorctl -c var/supervisor/supervisord.conf status"

    watch_until_ready(
        URLS, "http://gw", say=said.append, stop=threading.Event(), probe=lambda _: 200,
        supervision=status,
    )

    assert "restarts on its own" in said[-1] and status in said[-1]
