"""The Prometheus configuration and alert rules in deploy/prometheus (issue 15).

promtool comes from Debian's ``prometheus`` package (.ci/run installs it); these tests
install nothing. Besides promtool's own checks, every metric an alert reads must be one
the platform exposes: a renamed metric would otherwise leave an alert that never fires.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

import libs.events.metrics
import libs.platform.app  # noqa: F401  (registers the HTTP metrics)

PROMETHEUS = Path(__file__).resolve().parents[1] / "deploy" / "prometheus"
PROMTOOL = shutil.which("promtool")


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    if PROMTOOL is None:
        pytest.fail("promtool is missing: apt-get install prometheus (as .ci/run does)")
    return subprocess.run(
        [PROMTOOL, *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=60
    )


def test_the_alert_rules_are_valid() -> None:
    checked = promtool("check", "rules", "alerts.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_prometheus_config_is_valid() -> None:
    checked = promtool("check", "config", "prometheus.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_pages_fire_when_they_should() -> None:
    tested = promtool("test", "rules", "alerts_test.yml")
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_every_metric_an_alert_reads_is_exposed() -> None:
    # A family without label values yet has no samples: name what it will expose.
    exposed = {
        family.name + suffix
        for family in REGISTRY.collect()
        for suffix in ("", "_total", "_bucket", "_count", "_sum")
    }
    rules = (PROMETHEUS / "alerts.yml").read_text()
    named = set(re.findall(r"\b(crm_[a-z_]+)", rules))

    assert named, "no crm_ metric in the rules"
    assert named - exposed == set()
