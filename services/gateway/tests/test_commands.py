"""``crm users``: the operator invites a tenant's first admin and resets a password from
the command line, into the gateway's own database under the platform's DATABASE_URL."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from typer.testing import CliRunner

from libs.platform.db import create_engine
from services.gateway.commands import users
from services.gateway.users import UserStore


def test_the_first_admin_is_invited_and_reset_from_the_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/crm.db")
    monkeypatch.setenv("PUBLIC_URL", "https://crm.example.com")
    runner = CliRunner()

    invited = runner.invoke(users, ["invite", "Boss@ACME.cn", "--tenant", "acme", "--name", "王总"])
    again = runner.invoke(users, ["invite", "boss@acme.cn", "--tenant", "acme"])
    reset = runner.invoke(users, ["reset", "boss@acme.cn", "--tenant", "acme"])
    stranger = runner.invoke(users, ["reset", "nobody@acme.cn", "--tenant", "acme"])

    assert invited.exit_code == 0, invited.output
    assert invited.output.startswith("https://crm.example.com/console/#/set-password?token=")
    assert again.exit_code != 0 and "already a user" in again.output
    assert reset.exit_code == 0 and "token=" in reset.output
    assert reset.output != invited.output
    assert stranger.exit_code != 0
    # The gateway's database, as `crm run` names it beside the others: var-like gateway.db.
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/gateway.db")

    async def stored() -> tuple[str, frozenset[str], str]:
        try:
            user = await UserStore(engine).find("acme", "boss@acme.cn")
        finally:
            await engine.dispose()
        assert user is not None
        return user.name, user.roles, user.status

    assert asyncio.run(stored()) == ("王总", frozenset({"admin"}), "invited")
