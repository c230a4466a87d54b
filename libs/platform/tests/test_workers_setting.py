"""How many worker processes ``crm run`` gives each service, and how it tells them."""

from __future__ import annotations

import pytest

from libs.platform.cli import platform_processes
from libs.platform.preflight import machine_workers
from libs.platform.service import ServiceDeclaration
from libs.platform.settings import ServiceSettings

SCALES = ServiceDeclaration("contacts", 8001, ServiceSettings, "x:y", workers=2)
SINGLE = ServiceDeclaration("customer360", 8006, ServiceSettings, "x:y")


@pytest.mark.parametrize(("cores", "expected"), [(1, 1), (2, 2), (16, 2)])
def test_a_service_gets_the_workers_it_asks_for_within_the_machine_s_cores(
    monkeypatch: pytest.MonkeyPatch, cores: int, expected: int
) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: cores)
    assert machine_workers(SCALES, {}) == expected
    assert machine_workers(SINGLE, {}) == 1


def test_the_settings_override_the_machine_s_choice() -> None:
    assert machine_workers(SCALES, {"WORKERS": "3"}) == 3
    assert machine_workers(SINGLE, {"WORKERS": "3", "CUSTOMER360_WORKERS": "1"}) == 1
    assert machine_workers(SCALES, {"CONTACTS_WORKERS": "4"}) == 4


def test_crm_run_tells_each_process_its_workers_and_that_it_is_migrated() -> None:
    processes = platform_processes(
        [SCALES, SINGLE],
        database_url="",
        bootstrap="127.0.0.1:9092",
        ports={"contacts": 1, "customer360": 2},
        broker_port=None,
        workers={"contacts": 2, "customer360": 1},
        migrated=True,
    )
    assert [(p.env["WORKERS"], p.command[-3:]) for p in processes] == [
        ("2", ["serve", "contacts", "--no-migrate"]),
        ("1", ["serve", "customer360", "--no-migrate"]),
    ]
