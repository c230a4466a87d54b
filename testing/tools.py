"""Command-line tools from other ecosystems that tests check the published documents with.

The AsyncAPI CLI (npm ``@asyncapi/cli``) is installed on first use with the machine's
npm, pinned, into the user's cache (``$XDG_CACHE_HOME/crm-platform/tools``, like pip's and
npm's own caches), and reused afterwards by every checkout of the project: installing it
takes minutes, validating seconds. ``CRM_TOOLS_DIR`` puts it elsewhere. A machine without
npm fails the test that needs it, naming the package (Debian: ``apt-get install nodejs
npm``).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ASYNCAPI_CLI = "@asyncapi/cli"
ASYNCAPI_CLI_VERSION = "6.2.0"
_CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
TOOLS = Path(os.environ.get("CRM_TOOLS_DIR") or _CACHE / "crm-platform" / "tools")


def asyncapi_cli() -> Path:
    """The ``asyncapi`` executable, installed with npm into ``var/tools`` when missing."""
    prefix = TOOLS / f"asyncapi-cli-{ASYNCAPI_CLI_VERSION}"
    executable = prefix / "node_modules" / ".bin" / "asyncapi"
    if executable.exists():
        return executable
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        pytest.fail(
            f"node and npm are missing, needed for {ASYNCAPI_CLI}: apt-get install nodejs npm"
        )
    prefix.mkdir(parents=True, exist_ok=True)
    # Several test processes may start at once: one installs, the others wait for it.
    with (TOOLS / ".asyncapi-cli.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not executable.exists():
            installed = subprocess.run(
                [
                    npm,
                    "install",
                    "--prefer-offline",
                    "--no-audit",
                    "--no-fund",
                    "--prefix",
                    str(prefix),
                    f"{ASYNCAPI_CLI}@{ASYNCAPI_CLI_VERSION}",
                ],
                capture_output=True,
                text=True,
                timeout=3000,
            )
            if installed.returncode != 0:
                pytest.fail(f"npm install {ASYNCAPI_CLI} failed:\n{installed.stderr[-3000:]}")
    return executable


def asyncapi_environment(home: Path) -> dict[str, str]:
    """The CLI's environment: no usage metrics sent (nor the notice about them)."""
    config = home / "asyncapi-analytics.json"
    config.write_text(
        json.dumps({"analyticsEnabled": "false", "infoMessageShown": "true", "userID": "test"})
    )
    return {
        **os.environ,
        "ASYNCAPI_METRICS_CONFIG_PATH": str(config),
        "SUPPRESS_NO_CONFIG_WARNING": "true",
        "HOME": str(home),
    }
