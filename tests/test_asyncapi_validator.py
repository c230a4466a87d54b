"""The published AsyncAPI document passes the official validator (issue 15): the AsyncAPI
CLI's ``asyncapi validate``, which parses the document, resolves every reference and
applies the specification's rules. Warnings fail too: a subscriber's generator stops
on fewer."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from libs.events.asyncapi import asyncapi_document
from libs.platform.cli import catalogs
from testing.tools import asyncapi_cli, asyncapi_environment

PUBLISHED = Path(__file__).resolve().parents[1] / "docs" / "events" / "asyncapi.json"


def validate(document: Path, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(asyncapi_cli()),
            "validate",
            str(document),
            "--fail-severity",
            "warn",
            "--diagnostics-format",
            "text",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=asyncapi_environment(home),
        cwd=home,
    )


def test_the_published_asyncapi_document_is_valid(tmp_path: Path) -> None:
    checked = validate(PUBLISHED, tmp_path)

    assert checked.returncode == 0, checked.stdout[-5000:] + checked.stderr[-3000:]
    assert "is valid" in checked.stdout


def test_the_validator_refuses_a_dangling_reference(tmp_path: Path) -> None:
    """The check can fail: the reference that once dangled (issue 15) is refused."""
    document = asyncapi_document(catalogs())
    name = next(iter(document["components"]["schemas"]))
    document["components"]["schemas"][name] = {"$ref": "#/$defs/ConsentRecord"}
    broken = tmp_path / "asyncapi.json"
    broken.write_text(json.dumps(document))

    checked = validate(broken, tmp_path)

    assert checked.returncode != 0
