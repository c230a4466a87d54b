"""``crm run`` under supervisord (docs/decisions/0095): what its configuration asks for,
and the listener that keeps every line saying which process printed it."""

from __future__ import annotations

import configparser
import io
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from supervisor.datatypes import dict_of_key_value_pairs

from libs.platform.supervised_output import prefix_output
from libs.platform.supervision import stop_left_behind, supervisord_config


@dataclass(frozen=True)
class Program:
    name: str
    command: list[str]
    env: dict[str, str]


def read(config: str) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser()
    parser.read_string(config)
    return parser


def test_every_program_restarts_on_its_own_and_stops_with_its_process_group(
    tmp_path: Path,
) -> None:
    inherited = {"PATH": "/usr/bin", "DATABASE_URL": "postgresql://x/crm"}
    programs = [
        Program("broker", ["crm", "broker", "--port", "9092"], dict(inherited)),
        Program(
            "contacts",
            ["crm", "serve", "contacts"],
            {**inherited, "DATABASE_URL": "postgresql://u:50%off@x/crm_contacts",
             "HTTP_PORT": "8001", "NAME": 'say "hi" twice'},
        ),
    ]

    parsed = read(
        supervisord_config(
            programs, tmp_path, workdir=tmp_path, inherited=inherited, password="secret"
        )
    )

    assert parsed.get("supervisord", "nodaemon") == "true"
    for program in programs:
        section = f"program:{program.name}"
        for option, value in {
            "autorestart": "true",
            "stopasgroup": "true",
            "killasgroup": "true",
            "stdout_events_enabled": "true",
        }.items():
            assert parsed.get(section, option) == value, (section, option)
        assert int(parsed.get(section, "startretries")) > 1
        assert int(parsed.get(section, "startsecs")) > 0
    # Only what differs from supervisord's own environment, each value as given.
    environment = parsed.get("program:contacts", "environment").replace("%%", "%")
    assert dict_of_key_value_pairs(environment) == {
        "DATABASE_URL": "postgresql://u:50%off@x/crm_contacts",
        "HTTP_PORT": "8001",
        "NAME": 'say "hi" twice',
    }
    assert parsed.get("program:broker", "environment") == ""
    quoted = Program("tickets", ["crm"], {"NAME": '"quoted"'})
    with pytest.raises(ValueError, match="NAME"):
        supervisord_config([quoted], tmp_path, workdir=tmp_path, inherited={}, password="x")
    # The broker starts first; the listener before them all.
    priorities = {
        s: int(parsed[s]["priority"]) for s in parsed.sections() if "priority" in parsed[s]
    }
    assert priorities["eventlistener:output"] < priorities["program:broker"]
    assert priorities["program:broker"] < priorities["program:contacts"]


def event(process: str, data: bytes) -> bytes:
    payload = f"processname:{process} groupname:{process} pid:7 channel:stdout\n".encode() + data
    header = (
        "ver:3.0 server:supervisor serial:1 pool:output poolserial:1 "
        f"eventname:PROCESS_LOG_STDOUT len:{len(payload)}\n"
    )
    return header.encode() + payload


def test_each_line_a_program_prints_is_prefixed_with_its_name() -> None:
    events = io.BytesIO(
        event("contacts", "registered 李雷\nhalf a ".encode())
        + event("loyalty", b"earned 100\n")
        + event("contacts", b"line\n")
    )
    protocol, out = io.BytesIO(), io.BytesIO()

    prefix_output(events, protocol, out)

    assert out.getvalue().decode().splitlines() == [
        "contacts     | registered 李雷",
        "loyalty      | earned 100",
        "contacts     | half a line",
    ]
    # Ready before each event, each event acknowledged, ready again at the end.
    assert protocol.getvalue() == b"READY\nRESULT 2\nOK" * 3 + b"READY\n"


def test_what_a_killed_supervisord_left_running_is_stopped(tmp_path: Path) -> None:
    socket_url = f"unix://{tmp_path}/supervisor.sock"
    sleep = [sys.executable, "-c", "import time; time.sleep(60)"]

    def started(url: str, name: str) -> subprocess.Popen[bytes]:
        env = {**os.environ, "SUPERVISOR_SERVER_URL": url, "SUPERVISOR_PROCESS_NAME": name}
        return subprocess.Popen(sleep, env=env, start_new_session=True)

    left = started(socket_url, "contacts")
    another = started(f"unix://{tmp_path}/another.sock", "loyalty")
    try:
        time.sleep(0.3)  # its environment is readable once it runs

        stopped = stop_left_behind(socket_url, grace_seconds=5)

        assert stopped == ["contacts"]
        assert left.wait(timeout=5) == -signal.SIGTERM
        assert another.poll() is None, "another supervisord's program is left alone"
    finally:
        for process in (left, another):
            process.kill()
            process.wait()
