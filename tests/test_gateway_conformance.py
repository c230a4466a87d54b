"""The gateway answers as its OpenAPI document says (issue 15): schemathesis calls every
operation of the merged document through a running platform, as an admin and as a
viewer, and fails on any status code the operation does not document, any body that
does not match the documented schema or media type, and any documented header missing.
A 500 is documented nowhere, so it fails too; the documented 5xx are the gateway's own
(502/503/504 from a service) and the 360's 504 ``view_behind``, which a min_version far
ahead rightly gets. tests/test_fuzz_gateway.py throws hostile input at the same operations and
asks only for "no 5xx"; this one holds the answers to the contract.

The platform runs on PostgreSQL only here: the contract does not depend on the database,
and the fuzz test already runs both.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from libs.auth import issue_token
from libs.platform.settings import ServiceSettings
from tests.conftest import CLIENT_TIMEOUT, RunningPlatform, merged_openapi, wait_until_caught_up

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
CHECKS = ",".join(
    [
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
        "response_headers_conformance",
    ]
)
# Per operation: enough to reach each operation's refusals and its success path
# without making the suite slow (about 150 operations, two roles).
EXAMPLES_PER_OPERATION = 5
# The suite draws the same requests every run, so CI fails on a change, never on a draw
# (decision 0088). The slow run explores: a fresh seed each time (printed in its output,
# `--seed` replays it) and more examples per operation.
SUITE_SEED = 20261130
EXPLORING_EXAMPLES = 25


# Hypothesis, inside schemathesis, keeps its Unicode tables where it stores examples:
# in the run's fresh directory they were rebuilt by every walk (about 4 s of CPU). The
# tables go where the suite's own hypothesis keeps them; the examples nowhere
# (``--generation-database none``), so that no walk replays what an earlier one found.
HYPOTHESIS_STORAGE = Path(__file__).resolve().parents[1] / ".hypothesis"

Walk = tuple[str, int | None, int]  # role, seed, examples per operation


@pytest.fixture(scope="module")
def document(platform: RunningPlatform, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The merged document, once every service is in it."""
    merged = merged_openapi(platform.gateway)
    path = tmp_path_factory.mktemp("openapi") / "openapi.json"
    path.write_text(json.dumps(merged))
    return path


@dataclass
class Walks:
    """The schemathesis walks of this module, each in a process of its own. The roles'
    walks of one kind run side by side: each walk's requests go one at a time, in the
    order its seed gives, but the two roles no longer wait for each other, which made
    the PostgreSQL platform's tests the suite's longest unit of work."""

    platform: RunningPlatform
    document: Path
    tmp_path_factory: pytest.TempPathFactory
    running: dict[Walk, tuple[subprocess.Popen[bytes], Path]] = field(default_factory=dict)

    def start(self, walk: Walk) -> None:
        if walk in self.running:
            return
        role, seed, examples = walk
        workdir = self.tmp_path_factory.mktemp(f"conformance-{role}")
        # Its output in files, not pipes: nobody reads a pipe while the other walk runs.
        stdout, stderr = (workdir / "stdout").open("wb"), (workdir / "stderr").open("wb")
        token = issue_token(ServiceSettings().auth(), f"{role}@conformance", "conformance", [role])
        process = subprocess.Popen(
            [
                str(SCHEMATHESIS),
                "run",
                str(self.document),
                "--url",
                self.platform.gateway,
                "--header",
                f"Authorization: Bearer {token}",
                "--checks",
                CHECKS,
                "--phases",
                "examples,fuzzing",
                "--max-examples",
                str(examples),
                *(["--seed", str(seed)] if seed is not None else []),
                "--workers",
                "1",
                "--request-timeout",
                str(int(CLIENT_TIMEOUT)),
                "--no-shrink",
                "--generation-database",
                "none",
                "--warnings",
                "off",
                "--report-dir",
                str(workdir),
            ],
            stdout=stdout,
            stderr=stderr,
            cwd=workdir,
            env={**os.environ, "HYPOTHESIS_STORAGE_DIRECTORY": str(HYPOTHESIS_STORAGE)},
        )
        stdout.close()  # the child has its own copies
        stderr.close()
        self.running[walk] = (process, workdir)

    def finish(self, walk: Walk) -> tuple[int, str, str]:
        """The walk's exit code, standard output and error, once it has ended."""
        self.start(walk)
        process, workdir = self.running[walk]
        returncode = process.wait(timeout=1800)
        return returncode, (workdir / "stdout").read_text(), (workdir / "stderr").read_text()

    def stop(self) -> None:
        for process, _ in self.running.values():
            if process.poll() is None:
                process.kill()
                process.wait()


@pytest.fixture(scope="module")
def walks(
    platform: RunningPlatform, document: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Walks]:
    if not SCHEMATHESIS.exists():
        pytest.fail("schemathesis is missing: make install (it is a dev dependency)")
    started = Walks(platform, document, tmp_path_factory)
    yield started
    started.stop()


def _walks_of_the_same_kind(
    request: pytest.FixtureRequest, seed: int | None, examples: int
) -> list[Walk]:
    """The walks this run will ask for beside this one: the selected tests of this
    module with the same seed and number of examples, whatever their role."""
    found: list[Walk] = []
    for item in request.session.items:
        if not isinstance(item, pytest.Function) or item.module is not request.module:
            continue
        params = item.callspec.params
        if (params["seed"], params["examples"]) == (seed, examples):
            found.append((str(params["role"]), seed, examples))
    return found


@pytest.mark.parametrize("platform_database", ["postgresql"], indirect=True)
@pytest.mark.parametrize("role", ["admin", "viewer"])
@pytest.mark.parametrize(
    ("seed", "examples"),
    [
        pytest.param(SUITE_SEED, EXAMPLES_PER_OPERATION, id="suite"),
        pytest.param(None, EXPLORING_EXAMPLES, id="exploring", marks=pytest.mark.slow),
    ],
)
def test_every_operation_answers_as_documented(
    walks: Walks,
    role: str,
    seed: int | None,
    examples: int,
    request: pytest.FixtureRequest,
) -> None:
    for walk in _walks_of_the_same_kind(request, seed, examples):
        walks.start(walk)
    returncode, stdout, stderr = walks.finish((role, seed, examples))
    summary = stdout[stdout.find("=== FAILURES") :] if returncode else ""
    assert returncode == 0, (summary or stdout)[-20000:] + stderr[-2000:]
    tested = re.search(r"Tested: (\d+)", stdout)
    assert tested is not None and int(tested.group(1)) > 50, stdout[-3000:]


@pytest.fixture(scope="module", autouse=True)
def leave_the_platform_caught_up(platform: RunningPlatform) -> Iterator[None]:
    yield
    wait_until_caught_up(platform.gateway)
