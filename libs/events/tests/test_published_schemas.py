"""The JSON Schemas and the AsyncAPI document in docs/events are what the code says."""

from __future__ import annotations

import json
from pathlib import Path

from libs.events.asyncapi import asyncapi_document
from libs.events.catalog import published_catalogs as catalogs

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


def _references(node: object) -> list[str]:
    if isinstance(node, dict):
        return [
            ref
            for key, value in node.items()
            for ref in ([value] if key == "$ref" else _references(value))
        ]
    if isinstance(node, list):
        return [ref for value in node for ref in _references(value)]
    return []


def _resolve(document: dict[str, object], pointer: str) -> object:
    node: object = document
    for part in pointer.removeprefix("#/").split("/"):
        assert isinstance(node, dict) and part in node, pointer
        node = node[part]
    return node


def test_the_asyncapi_document_is_true_and_every_reference_resolves() -> None:
    document = asyncapi_document(catalogs())

    references = _references(document)
    assert any("/$defs/" in ref for ref in references)  # nested models are referenced
    for ref in references:
        assert ref.startswith("#/"), ref
        _resolve(document, ref)
    assert document["servers"]["local"]["protocol"] == "kafka"
    # The document describes the platform, which sends every topic it lists.
    assert {op["action"] for op in document["operations"].values()} == {"send"}
    key = document["components"]["messages"]["crm_contacts_custom_field_defined_v1"]
    assert "custom-fields" in key["bindings"]["kafka"]["key"]["description"]
