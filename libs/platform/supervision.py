"""``crm run``'s processes under supervisord: one that dies is started again, the others
keep serving (docs/decisions/0095).

supervisord runs in the foreground as ``crm run``'s child, on a configuration written
under ``var/supervisor/``. Each program restarts on its own (``autorestart``); one that
keeps dying within ``startsecs`` waits 1, 2, 3... s between tries and, after
``startretries``, is left FATAL for an operator (``supervisorctl start <name>``). A
program is stopped with its whole process group, so a service's uvicorn workers go with
it. What the programs print reaches supervisord's standard output through an event
listener that prefixes every line with the program's name
(``libs.platform.supervised_output``); supervisord's own lines (spawned, exited) are
there too, and each program's output is also kept in ``var/supervisor/<name>.log``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import shlex
import signal
import stat
import subprocess
import sys
import threading
import time
import xmlrpc.client
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import Any, Protocol

from libs.platform.readiness_watch import watch_until_ready

# A program that stays up this long has started; one dying sooner is a failed start.
START_SECONDS = 5
# Failed starts in a row (each waiting a second longer than the one before) before a
# program is left FATAL: a minute of backoff and more, time for a database to come back.
START_RETRIES = 12
# How long a service has to drain on SIGTERM before it and its workers are killed.
STOP_WAIT_SECONDS = 20
# Events the prefixing listener may lag behind before supervisord drops the oldest.
OUTPUT_EVENTS_BUFFER = 4096
LISTENER = "output"


class Program(Protocol):
    """What supervisord needs of a process (``libs.platform.cli.PlatformProcess``)."""

    @property
    def name(self) -> str: ...

    @property
    def command(self) -> list[str]: ...

    @property
    def env(self) -> dict[str, str]: ...


def _value(text: str) -> str:
    """``text`` as a supervisord option value: its ``%`` expansion escaped."""
    if "\n" in text:
        raise ValueError(f"a newline cannot be passed to supervisord: {text!r}")
    return text.replace("%", "%%")


def _environment(env: Mapping[str, str], inherited: Mapping[str, str]) -> str:
    """The ``environment=`` of a program: what it sets beyond what supervisord has.

    supervisord reads each value as a quoted word without escapes, and strips quotes
    from both its ends: a value is quoted with whichever quote it does not hold, and
    one that holds both, or starts or ends with one, cannot be passed."""
    pairs = []
    for key, value in sorted(env.items()):
        if inherited.get(key) == value:
            continue
        quote = '"' if '"' not in value else "'"
        if quote in value or value.strip("'\"") != value:
            raise ValueError(f"{key}: supervisord cannot pass {value!r} to a program")
        pairs.append(f"{key}={quote}{_value(value)}{quote}")
    return ",".join(pairs)


def supervisord_config(
    programs: Sequence[Program],
    folder: Path,
    *,
    workdir: Path,
    inherited: Mapping[str, str],
    password: str,
) -> str:
    """supervisord's configuration for ``programs``, its files kept in ``folder``.

    ``inherited``: the environment supervisord starts with (the programs' too); each
    program sets only what differs from it. ``password``: for its control socket (the
    configuration is readable by its owner only)."""
    folder = folder.resolve()
    lines = [
        "[supervisord]",
        "nodaemon=true",
        # As whoever started it (root included, said so: else it warns that it is).
        *(["user=root"] if os.geteuid() == 0 else []),
        # Its own lines (spawned, exited, gave up) go to its standard output as well
        # (nodaemon), where `crm run` shows everything.
        f"logfile={_value(str(folder / 'supervisord.log'))}",
        "logfile_maxbytes=10MB",
        "logfile_backups=1",
        "loglevel=info",
        f"pidfile={_value(str(folder / 'supervisord.pid'))}",
        f"childlogdir={_value(str(folder))}",
        f"directory={_value(str(workdir.resolve()))}",
        "",
        "[unix_http_server]",
        f"file={_value(str(folder / 'supervisor.sock'))}",
        "chmod=0700",
        "username=crm",
        f"password={password}",
        "",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
        "",
        "[supervisorctl]",
        f"serverurl=unix://{_value(str(folder / 'supervisor.sock'))}",
        "username=crm",
        f"password={password}",
        "",
        f"[eventlistener:{LISTENER}]",
        f"command={_value(shlex.join([sys.executable, '-m', 'libs.platform.supervised_output']))}",
        "events=PROCESS_LOG",
        f"buffer_size={OUTPUT_EVENTS_BUFFER}",
        "autorestart=true",
        "stdout_logfile=NONE",
        # The prefixed lines: the listener writes them to its stderr (its stdout talks
        # to supervisord), which goes to supervisord's standard output.
        "stderr_logfile=/dev/stdout",
        "stderr_logfile_maxbytes=0",
        "priority=1",
    ]
    for priority, program in enumerate(programs, start=10):
        broker = program.name == "broker"
        lines += [
            "",
            f"[program:{program.name}]",
            f"command={_value(shlex.join(program.command))}",
            f"environment={_environment(program.env, inherited)}",
            # The broker first: the services connect to it as they start.
            f"priority={priority}",
            "autostart=true",
            "autorestart=true",
            f"startsecs={START_SECONDS}",
            f"startretries={START_RETRIES}",
            # The memory broker has nothing to flush and lingers on SIGTERM.
            f"stopsignal={'KILL' if broker else 'TERM'}",
            f"stopwaitsecs={STOP_WAIT_SECONDS}",
            "stopasgroup=true",
            "killasgroup=true",
            "redirect_stderr=true",
            f"stdout_logfile={_value(str(folder / f'{program.name}.log'))}",
            "stdout_logfile_maxbytes=10MB",
            "stdout_logfile_backups=1",
            "stdout_events_enabled=true",
        ]
    return "\n".join(lines) + "\n"


class Supervisor:
    """supervisord in the foreground, as ``crm run``'s child, over ``programs``."""

    def __init__(
        self,
        programs: Sequence[Program],
        folder: Path,
        *,
        workdir: Path | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.folder = folder
        self.config = folder / "supervisord.conf"
        self.environ = dict(os.environ if environ is None else environ)
        self.workdir = workdir or Path.cwd()
        self.programs = list(programs)
        self.process: subprocess.Popen[bytes] | None = None
        self.password = secrets.token_hex(16)

    def start(self, **popen: Any) -> subprocess.Popen[bytes]:
        self.folder.mkdir(parents=True, exist_ok=True)
        config = supervisord_config(
            self.programs,
            self.folder,
            workdir=self.workdir,
            inherited=self.environ,
            password=self.password,
        )
        self.config.unlink(missing_ok=True)
        descriptor = os.open(self.config, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(config)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "supervisor.supervisord", "-c", str(self.config)],
            env=self.environ,
            **popen,
        )
        return self.process

    def socket_url(self) -> str:
        return f"unix://{(self.folder / 'supervisor.sock').resolve()}"

    def control(self) -> Any:
        """supervisord's XML-RPC interface (``supervisor.getProcessInfo(name)``, ...)."""
        from supervisor.xmlrpc import SupervisorTransport

        transport = SupervisorTransport("crm", self.password, self.socket_url())
        return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)

    def pid(self, name: str) -> int:
        """The process id of a program now (0: not running)."""
        return int(self.control().supervisor.getProcessInfo(name)["pid"])

    def state(self, name: str) -> str:
        """``RUNNING``, ``STARTING``, ``BACKOFF``, ``FATAL``, ... of a program now."""
        return str(self.control().supervisor.getProcessInfo(name)["statename"])

    def stop(self, timeout: float = STOP_WAIT_SECONDS + 15) -> int:
        """Stop every program (each with its process group), then supervisord."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def run_until_stopped(self, readiness: Mapping[str, str], gateway: str) -> int:
        """Start supervisord, say "ready" once every ``readiness`` URL answers 200, and
        wait until supervisord ends (after Ctrl-C, SIGTERM or SIGHUP)."""
        _append_to_stdout_file()
        self.start()
        stop_watching = threading.Event()
        threading.Thread(
            target=watch_until_ready,
            args=(readiness, gateway),
            kwargs={
                "say": lambda line: print(line, flush=True),
                "stop": stop_watching,
                "supervision": control_command(self.folder),
            },
            name="crm-readiness",
            daemon=True,
        ).start()
        try:
            code = self.wait_forever()
        finally:
            stop_watching.set()
        if code < 0:  # supervisord itself was killed: its programs would run on, unseen
            left = stop_left_behind(self.socket_url())
            print(f"crm run: supervisord ended by signal {-code}; stopped what it ran: "
                  f"{', '.join(left) or 'nothing left'}", file=sys.stderr, flush=True)
        return code

    def wait_forever(self) -> int:
        """Until supervisord ends; SIGTERM, SIGHUP or Ctrl-C stop everything first."""
        assert self.process is not None

        def forward(signum: int, frame: FrameType | None) -> None:
            if self.process is not None and self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)

        for signum in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, forward)
        while True:
            try:
                return self.process.wait()
            except KeyboardInterrupt:
                # A terminal's Ctrl-C reached supervisord too; a SIGINT sent to
                # `crm run` alone did not: tell it, and wait for the programs to stop.
                forward(signal.SIGINT, None)


def stop_left_behind(socket_url: str, grace_seconds: float = STOP_WAIT_SECONDS) -> list[str]:
    """Stop, with their process groups, the programs a supervisord (known by its control
    socket, which it puts in their environment) started and left running when it was
    killed. Their names."""
    marker = f"SUPERVISOR_SERVER_URL={socket_url}".encode()
    groups: dict[int, str] = {}
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            variables = environ.read_bytes().split(b"\0")
            pid = int(environ.parent.name)
            if marker in variables and os.getpgid(pid) == pid:  # a program, not a worker
                name = next(v for v in variables if v.startswith(b"SUPERVISOR_PROCESS_NAME="))
                groups[pid] = name.split(b"=", 1)[1].decode()
        except (OSError, StopIteration):
            continue
    for sent in (signal.SIGTERM, signal.SIGKILL):
        for group in groups:
            with contextlib.suppress(OSError):
                os.killpg(group, sent)
        deadline = time.monotonic() + grace_seconds
        while time.monotonic() < deadline and any(_alive(g) for g in groups):
            time.sleep(0.2)
    return sorted(groups.values())


def _alive(leader: int) -> bool:
    """Whether a program (its group's leader) still runs: not gone, nor a zombie (its
    workers, watching it, leave with it)."""
    try:
        state = Path(f"/proc/{leader}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _append_to_stdout_file() -> None:
    """supervisord writes to /dev/stdout, which, when ``crm run``'s output goes to a
    file, it opens anew at its own offset: writing here in append mode too keeps one
    from overwriting the other's lines."""
    if stat.S_ISREG(os.fstat(1).st_mode):
        fcntl.fcntl(1, fcntl.F_SETFL, fcntl.fcntl(1, fcntl.F_GETFL) | os.O_APPEND)


def control_command(folder: Path) -> str:
    """How to see (and steer) the supervised processes from a shell."""
    ctl = Path(sys.executable).with_name("supervisorctl")
    shown = os.path.relpath(ctl) if ctl.is_relative_to(Path.cwd()) else str(ctl)
    return f"{shown} -c {folder / 'supervisord.conf'} status"

