"""The JSON Schemas and the AsyncAPI document in docs/events are what the code says."""

from __future__ import annotations

import json
from pathlib import Path

from libs.events.asyncapi import asyncapi_document
from libs.platform.cli import catalogs

DOCS = Path(__file__).resolve().parents[3] / "docs" / "events"


def test_every_published_schema_matches_its_model() -> None:
    for catalog in catalogs().values():
        for type_name, schema in catalog.json_schemas().items():
            path = DOCS / "schemas" / f"{type_name}.json"
            assert path.exists(), f"{path} missing: run `make schemas`"
            assert json.loads(path.read_text(encoding="utf-8")) == schema, (
                f"{path} is stale: run `make schemas`"
            )


def test_the_asyncapi_document_lists_every_topic_and_type() -> None:
    published = json.loads((DOCS / "asyncapi.json").read_text(encoding="utf-8"))

    assert published == asyncapi_document(catalogs()), "stale: run `make schemas`"
    assert "crm.contacts.events" in published["channels"]
    assert "crm_contacts_customer_registered_v1" in published["components"]["messages"]
