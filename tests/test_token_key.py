"""Without JWT_SECRET, `crm` signs with a key of this install's own, and on PostgreSQL
(a deployment) it refuses to start at all (decision 0099)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from libs.auth.tokens import TokenVerifier
from libs.platform.cli import build_cli
from services.bootstrap import SERVICES


@pytest.fixture
def new_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.delenv("JWT_SECRET", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_crm_run_on_postgresql_without_a_token_key_refuses_in_one_line(
    new_install: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/crm_keyless")

    result = CliRunner().invoke(build_cli(SERVICES), ["run"])

    assert result.exit_code == 1
    assert "cannot start: JWT_SECRET is not set" in result.output
    assert not (new_install / "var" / "jwt-secret").exists()


def test_crm_token_signs_with_the_key_every_service_of_the_install_reads(
    new_install: Path,
) -> None:
    result = CliRunner().invoke(build_cli(SERVICES), ["token", "--tenant", "acme"])
    assert result.exit_code == 0, result.output
    key = (new_install / "var" / "jwt-secret").read_text().strip()

    for service in SERVICES:
        auth = service.settings().auth()
        assert auth.secret is not None and auth.secret.get_secret_value() == key
        assert TokenVerifier(auth).verify(result.output.strip()).tenant_id == "acme"
