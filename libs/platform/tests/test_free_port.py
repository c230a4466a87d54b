"""free_port: within FREE_PORTS, ports are handed out in turn and a taken one is skipped,
so parallel test workers with ranges of their own never start servers on one port."""

from __future__ import annotations

import socket

import pytest

from libs.platform.broker import free_port, taken_ports


def test_ports_come_in_turn_from_the_range_skipping_one_in_use(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        low = 23_700 + probe.getsockname()[1] % 500  # a range unlikely to be in use
    monkeypatch.setenv("FREE_PORTS", f"{low}-{low + 9}")
    first = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", first + 1))
        taken.listen()
        handed = [free_port() for _ in range(3)]

    assert low <= first <= low + 9
    assert first + 1 not in handed
    assert len({first, *handed}) == 4
    assert all(low <= port <= low + 9 for port in handed)


def test_without_a_range_the_system_picks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FREE_PORTS", raising=False)
    port = free_port()
    with socket.socket() as server:
        server.bind(("127.0.0.1", port))  # it was free


def test_crm_run_is_told_which_of_its_ports_something_already_listens_on() -> None:
    # `make run` refuses to start beside an earlier one still stopping: its readiness
    # check would otherwise answer for the old processes and say "ready".
    with socket.socket() as listening, socket.socket() as closed:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        closed.bind(("127.0.0.1", 0))
        free = closed.getsockname()[1]
        closed.close()
        busy = listening.getsockname()[1]

        assert taken_ports({"gateway": busy, "contacts": free}) == {"gateway": busy}
