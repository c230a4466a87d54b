"""Tools from other ecosystems the tests use: the official AsyncAPI parser, which checks
the published documents, a certified OpenID Connect provider for single sign-on, and
axe-core, which checks the console's pages for accessibility.

Each (npm ``@asyncapi/parser``, ``oidc-provider``, ``axe-core``) is installed on first use
with the machine's npm, pinned, into the user's cache (``$XDG_CACHE_HOME/crm-platform/tools``,
like pip's and npm's own caches), and reused afterwards by every checkout of the project:
seconds each. ``CRM_TOOLS_DIR`` puts them elsewhere. A machine without npm fails the
test that needs one, naming the package (Debian: ``apt-get install nodejs npm``).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from pathlib import Path

import pytest

# The parser the AsyncAPI CLI validates with (its ``validate`` is this parser and its
# ruleset), without the CLI's generators: 54 MB and seconds to install, not minutes.
ASYNCAPI_PARSER = "@asyncapi/parser"
ASYNCAPI_PARSER_VERSION = "3.6.6"
_CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
TOOLS = Path(os.environ.get("CRM_TOOLS_DIR") or _CACHE / "crm-platform" / "tools")


OIDC_PROVIDER = "oidc-provider"
OIDC_PROVIDER_VERSION = "9.13.3"
AXE_CORE = "axe-core"
AXE_CORE_VERSION = "4.14.1"


def asyncapi_validator_script() -> Path:
    """``testing/asyncapi_validate.mjs`` beside the pinned parser (an ES module finds its
    packages next to itself): ``node <it> <document>`` validates a document."""
    return _script_beside(
        ASYNCAPI_PARSER, ASYNCAPI_PARSER_VERSION, Path(ASYNCAPI_PARSER) / "package.json",
        "asyncapi_validate.mjs",
    )


def oidc_provider_script() -> Path:
    """The suite's OpenID Connect provider (``testing/oidc_provider.mjs``), copied beside
    the pinned ``oidc-provider`` package: an ES module finds packages next to itself."""
    marker = Path(OIDC_PROVIDER) / "package.json"
    return _script_beside(OIDC_PROVIDER, OIDC_PROVIDER_VERSION, marker, "oidc_provider.mjs")


def _script_beside(package: str, version: str, marker: Path, name: str) -> Path:
    """The suite's script ``name`` copied beside the pinned ``package`` (per process, so
    that parallel workers never write the file another is running)."""
    prefix = _npm_package(package, version, marker)
    source = Path(__file__).with_name(name)
    script = prefix / f"{os.getpid()}-{source.name}"
    script.write_text(source.read_text())
    return script


def axe_core_source() -> str:
    """axe-core's browser bundle, to run in a page the console tests have open."""
    marker = Path(AXE_CORE) / "axe.min.js"
    return (_npm_package(AXE_CORE, AXE_CORE_VERSION, marker) / "node_modules" / marker).read_text()


def _npm_package(package: str, version: str, marker: Path) -> Path:
    """The npm prefix ``package@version`` is installed in (once per machine, on first use)."""
    prefix = TOOLS / f"{package.strip('@').replace('/', '-')}-{version}"
    installed = prefix / "node_modules" / marker
    if installed.exists():
        return prefix
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        pytest.fail(f"node and npm are missing, needed for {package}: apt-get install nodejs npm")
    prefix.mkdir(parents=True, exist_ok=True)
    # Several test processes may start at once: one installs, the others wait for it.
    with (TOOLS / f".{prefix.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not installed.exists():
            done = subprocess.run(
                [
                    npm,
                    "install",
                    "--prefer-offline",
                    "--no-audit",
                    "--no-fund",
                    "--prefix",
                    str(prefix),
                    f"{package}@{version}",
                ],
                capture_output=True,
                text=True,
                timeout=3000,
            )
            if done.returncode != 0:
                pytest.fail(f"npm install {package} failed:\n{done.stderr[-3000:]}")
    return prefix
