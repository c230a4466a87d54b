"""Every service's OpenAPI publishes the one error shape, on every operation, for every
status the operation can answer (issue 15).

The expectations are read from the document itself (an operation that takes a bearer
token can answer 401; one with a path parameter, 404; with If-Match, 412; with any
input, 422), so a new endpoint is checked without anyone listing it here.
"""

from __future__ import annotations

from collections.abc import Iterator
from importlib import import_module
from typing import Any

import pytest
from fastapi import FastAPI

from libs.platform.problems import PROBLEM_MEDIA_TYPE, PROBLEM_SCHEMA
from libs.platform.service import ServiceDeclaration
from services.bootstrap import SERVICES, gateway_routing
from services.gateway.openapi import UpstreamDocument, merge_documents

PROBLEM_REF = "#/components/schemas/Problem"
METHODS = ("get", "put", "post", "delete", "patch")


def app_of(service: ServiceDeclaration) -> FastAPI:
    module, factory = service.app.split(":")
    app = getattr(import_module(module), factory)()
    assert isinstance(app, FastAPI)
    return app


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method in METHODS:
            if method in item:
                yield path, method, item[method]


def expected_statuses(operation: dict[str, Any]) -> set[int]:
    parameters = operation.get("parameters", [])
    expected: set[int] = set()
    if operation.get("security"):
        expected |= {401, 403}
    if parameters or "requestBody" in operation:
        expected.add(422)
    if any(p["in"] == "path" for p in parameters):
        expected.add(404)
    if any(p["in"] == "header" and p["name"].lower() == "if-match" for p in parameters):
        expected.add(412)
    return expected


def problems_of(where: str, document: dict[str, Any]) -> list[str]:
    """Every way ``document`` breaks the contract, one line each (empty: none)."""
    found: list[str] = []
    if document["components"]["schemas"].get("Problem") != PROBLEM_SCHEMA:
        found.append(f"{where}: no Problem schema")
    for name in ("HTTPValidationError", "ValidationError"):
        if name in document["components"]["schemas"]:
            found.append(f"{where}: publishes {name}, a shape never sent")
    for path, method, operation in operations(document):
        responses = operation["responses"]
        errors = {int(code): body for code, body in responses.items() if code[0] in "45"}
        for code, body in errors.items():
            content = body.get("content", {})
            if set(content) != {PROBLEM_MEDIA_TYPE} or (
                content[PROBLEM_MEDIA_TYPE]["schema"] != {"$ref": PROBLEM_REF}
            ):
                found.append(f"{where} {method.upper()} {path} {code}: not a problem")
        missing = expected_statuses(operation) - errors.keys()
        if missing:
            found.append(f"{where} {method.upper()} {path}: {sorted(missing)} undocumented")
    return found


@pytest.fixture(scope="module")
def documents() -> dict[str, dict[str, Any]]:
    return {service.name: app_of(service).openapi() for service in SERVICES}


def test_every_service_documents_the_problem_shape_and_its_codes(
    documents: dict[str, dict[str, Any]],
) -> None:
    found = [line for name, document in documents.items() for line in problems_of(name, document)]

    assert found == []
    assert sum(1 for d in documents.values() for _ in operations(d)) > 50


def test_the_gateways_merged_document_adds_what_the_gateway_itself_answers(
    documents: dict[str, dict[str, Any]],
) -> None:
    upstreams = [
        UpstreamDocument(name, "available", document, None, 0.0)
        for name, document in documents.items()
        if name != "gateway"
    ]
    merged = merge_documents(documents["gateway"], upstreams, gateway_routing())

    assert problems_of("gateway (merged)", merged) == []
    for path, method, operation in operations(merged):
        if operation.get("x-service"):
            statuses = set(operation["responses"])
            assert {"502", "503", "504"} <= statuses, (method, path)
            if operation.get("security"):
                assert {"401", "403", "429"} <= statuses, (method, path)
