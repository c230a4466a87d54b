# Test support lives in testing/, beside the production packages and never in them.
from __future__ import annotations

import os
import re
from typing import Any

import pytest
from xdist.scheduler import LoadScopeScheduling

pytest_plugins = ["testing.fixtures"]

# One token key for the suite, its services and the platforms it starts (inherited by
# their processes): PostgreSQL settings refuse to start without one (decision 0099).
os.environ.setdefault("JWT_SECRET", "crm-test-suite-token-key-of-at-least-32-bytes")

# The running platform's tests (tests/, parametrised by platform_database) carry their
# database in their id: [sqlite], [postgresql], [admin-postgresql], ...
_PLATFORM_TEST = re.compile(r"^tests/[^:]+::[^\[]+\[(?:[^\]]*-)?(sqlite|postgresql)(?:-[^\]]*)?\]$")


# The longest units of work, handed out before any other (longest first): one started
# last would leave the other workers idle while it runs. Measured (docs/decisions/0090):
# each platform's tests take minutes; the AsyncAPI check installs its CLI with npm on a
# fresh clone; the benchmarks run every one of them once.
_LONGEST_FIRST = (
    "platform-postgresql",
    "platform-sqlite",
    "tests/test_asyncapi_validator.py",
    "tests/test_bench_runs.py",
)


class ByFileAndPlatform(LoadScopeScheduling):
    """How `make test` (`pytest -n N`) shares the tests out: a whole file to one worker,
    so its module fixtures are built once; and every test on the running platform of one
    database to one worker, which alone starts that platform (eight services), instead of
    each worker starting its own. The longest units go out first; the rest, the units
    with most tests first (xdist's order)."""

    def _split_scope(self, nodeid: str) -> str:
        platform = _PLATFORM_TEST.match(nodeid)
        if platform is not None:
            return f"platform-{platform.group(1)}"
        return nodeid.split("::", 1)[0]

    def _assign_work_unit(self, node: Any) -> None:
        for scope in _LONGEST_FIRST:
            if scope in self.workqueue:
                self.workqueue.move_to_end(scope, last=False)
                break
        super()._assign_work_unit(node)


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> ByFileAndPlatform:
    return ByFileAndPlatform(config, log)
