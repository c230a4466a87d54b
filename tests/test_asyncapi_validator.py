"""The published AsyncAPI document passes the official validator (issue 15): the AsyncAPI
parser that the CLI's ``asyncapi validate`` runs, which parses the document, resolves
every reference and applies the specification's rules. Warnings fail too
(``--fail-severity warn``): a subscriber's generator stops on fewer."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from libs.events.asyncapi import asyncapi_document
from libs.platform.cli import catalogs
from testing.tools import asyncapi_validator_script

PUBLISHED = Path(__file__).resolve().parents[1] / "docs" / "events" / "asyncapi.json"


def validate(document: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["node", str(asyncapi_validator_script()), str(document)],
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_the_published_asyncapi_document_is_valid() -> None:
    checked = validate(PUBLISHED)

    assert checked.returncode == 0, checked.stdout[-5000:] + checked.stderr[-3000:]
    assert "is valid" in checked.stdout


def test_the_validator_refuses_a_dangling_reference(tmp_path: Path) -> None:
    """The check can fail: the reference that once dangled (issue 15) is refused."""
    document = asyncapi_document(catalogs())
    name = next(iter(document["components"]["schemas"]))
    document["components"]["schemas"][name] = {"$ref": "#/$defs/ConsentRecord"}
    broken = tmp_path / "asyncapi.json"
    broken.write_text(json.dumps(document))

    checked = validate(broken)

    assert checked.returncode != 0
    assert "invalid-ref" in checked.stdout and "ConsentRecord" in checked.stdout
