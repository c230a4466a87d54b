"""create_service_app: the outside every service shares (ids, errors, health, metrics, auth)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Annotated

import httpx
import pytest
from fastapi import Depends
from pydantic import BaseModel, Field, field_validator

from libs.auth import Principal, issue_token, require
from libs.platform.app import create_service_app, current_correlation_id, if_match_version
from libs.platform.errors import (
    Conflict,
    DomainError,
    Forbidden,
    NotFound,
    PreconditionFailed,
    Unprocessable,
)
from libs.platform.routing import ServiceRouter
from libs.platform.settings import ServiceSettings
from testing.problems import problem_of


class ContactsSettings(ServiceSettings):
    service_name = "contacts-test"


class Address(BaseModel):
    city: str = Field(min_length=1)


class RegisterCustomer(BaseModel):
    email: str
    name: str = Field(min_length=1, max_length=200)
    address: Address | None = None

    @field_validator("email")
    @classmethod
    def _looks_like_an_email(cls, email: str) -> str:
        if "@" not in email:
            raise ValueError("not an email address")
        return email


EXISTING_ID = uuid.UUID("00000000-0000-4000-8000-000000000001")

router = ServiceRouter()


@router.post("/customers", status_code=201)
async def register_customer(
    command: RegisterCustomer,
    principal: Annotated[Principal, Depends(require("customers:write"))],
) -> dict[str, str | None]:
    return {"email": command.email, "tenant": principal.tenant_id,
            "correlation_id": current_correlation_id()}


@router.get("/customers")
async def list_customers(limit: int = 50) -> dict[str, int]:
    return {"limit": limit}


@router.get("/refusals/{kind}")
async def refuse(kind: str) -> None:
    raise {
        "not_found": NotFound("customer c-9 not found"),
        "conflict": Conflict("email already registered", existing_id=EXISTING_ID),
        "precondition": PreconditionFailed("customer changed since version 3", current_version=5),
        "unprocessable": Unprocessable("birthday", "must be in the past"),
        "forbidden": Forbidden("customer belongs to another owner"),
        "domain": DomainError("points cannot be negative"),
    }[kind]


@router.get("/bug")
async def bug() -> None:
    raise ZeroDivisionError("a bug on our side")


@router.put("/customers/{customer_id}")
async def update_customer(
    customer_id: str, expected_version: Annotated[int | None, Depends(if_match_version)]
) -> dict[str, int | None]:
    return {"expected_version": expected_version}


SETTINGS = ContactsSettings(max_request_body_bytes=4096)


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = create_service_app(
        title="contacts", version="1.2.3", settings=SETTINGS, routers=[router]
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://contacts") as client:
        yield client


def sales_token() -> dict[str, str]:
    return {"Authorization": "Bearer " + issue_token(SETTINGS.auth(), "u-1", "acme", ["sales"])}


# --- ids ---------------------------------------------------------------------------


async def test_a_request_id_is_generated_and_the_correlation_id_defaults_to_it(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/healthz")

    request_id = response.headers["X-Request-ID"]
    assert uuid.UUID(request_id)
    assert response.headers["X-Correlation-ID"] == request_id


async def test_ids_given_by_the_caller_are_echoed(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/healthz", headers={"X-Request-ID": "req-42", "X-Correlation-ID": "order-flow-7"}
    )

    assert response.headers["X-Request-ID"] == "req-42"
    assert response.headers["X-Correlation-ID"] == "order-flow-7"


async def test_unusable_ids_are_replaced_not_echoed(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/healthz", headers={"X-Request-ID": "x" * 500, "X-Correlation-ID": "a b\tc"}
    )

    assert response.headers["X-Request-ID"] != "x" * 500
    assert response.headers["X-Correlation-ID"] == response.headers["X-Request-ID"]


async def test_handlers_see_the_correlation_id_for_their_events(
    client: httpx.AsyncClient, capsys: pytest.CaptureFixture[str]
) -> None:
    response = await client.post(
        "/customers",
        json={"email": "ana@example.com", "name": "Ana"},
        headers={**sales_token(), "X-Correlation-ID": "campaign-2030"},
    )

    assert response.status_code == 201
    assert response.json()["correlation_id"] == "campaign-2030"
    assert current_correlation_id() is None  # nothing leaks out of the request
    [access_line] = [
        json.loads(line) for line in capsys.readouterr().out.splitlines()
        if '"event": "request"' in line
    ]
    assert access_line["correlation_id"] == "campaign-2030"
    assert (access_line["tenant_id"], access_line["subject"]) == ("acme", "u-1")
    assert access_line["route"] == "/customers"
    assert access_line["status"] == 201


# --- validation ----------------------------------------------------------------------


async def test_a_body_error_is_422_naming_the_field(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/customers", json={"email": "not-an-email", "name": "Ana"}, headers=sales_token()
    )

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json() == {
        "type": "about:blank",
        "title": "Unprocessable Content",
        "status": 422,
        "detail": "email: not an email address",
        "errors": [{"field": "email", "reason": "not an email address"}],
        "instance": "/customers",
        "request_id": response.headers["X-Request-ID"],
    }
    assert "not-an-email" not in response.text  # no echo of personal data


async def test_nested_and_missing_fields_are_named_by_their_path(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/customers", json={"email": "ana@example.com", "address": {"city": ""}},
        headers=sales_token(),
    )

    assert response.status_code == 422
    fields = {issue["field"]: issue["reason"] for issue in response.json()["errors"]}
    assert set(fields) == {"name", "address.city"}
    assert fields["name"] == "Field required"


async def test_a_query_error_is_422_naming_the_parameter(client: httpx.AsyncClient) -> None:
    response = await client.get("/customers", params={"limit": "lots"})

    assert response.status_code == 422
    assert [issue["field"] for issue in response.json()["errors"]] == ["limit"]


async def test_malformed_json_is_422_on_the_body(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/customers", content=b'{"email": ', headers={**sales_token(),
                                                     "Content-Type": "application/json"},
    )

    assert response.status_code == 422
    assert [issue["field"] for issue in response.json()["errors"]] == ["body"]


async def test_a_body_that_is_not_utf8_is_422_on_the_body_not_an_undocumented_400(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/customers", content=b"{\"email\": \"\xff\"}", headers={**sales_token(),
                                                         "Content-Type": "application/json"},
    )

    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"field": "body", "reason": "not valid JSON: the body is not UTF-8"}
    ]


async def test_json_nested_past_the_parser_is_422_saying_so_not_that_it_is_not_utf8(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/customers",
        content=b"[" * 2_000 + b"]" * 2_000,  # under the 4 KiB limit of these tests
        headers={**sales_token(), "Content-Type": "application/json"},
    )

    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"field": "body", "reason": "not valid JSON: nested deeper than the parser allows"}
    ]


async def test_an_oversized_body_is_413(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/customers", json={"email": "ana@example.com", "name": "A" * 10_000},
        headers=sales_token(),
    )

    assert response.status_code == 413
    assert problem_of(response) == {
        "detail": "the request body is larger than 4096 bytes",
        "max_bytes": 4096,
    }


async def test_an_oversized_body_without_a_declared_length_is_a_json_413(
    client: httpx.AsyncClient,
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"email": "ana@example.com", "name": "'
        for _ in range(10):
            yield b"A" * 1000
        yield b'"}'

    response = await client.post(
        "/customers", content=chunks(),
        headers={**sales_token(), "Content-Type": "application/json"},
    )

    assert response.status_code == 413
    assert response.json()["max_bytes"] == 4096


# --- domain errors -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "status", "body"),
    [
        ("not_found", 404, {"detail": "customer c-9 not found"}),
        ("conflict", 409, {"detail": "email already registered", "existing_id": str(EXISTING_ID)}),
        ("precondition", 412, {"detail": "customer changed since version 3", "current_version": 5}),
        (
            "unprocessable",
            422,
            {
                "detail": "birthday: must be in the past",
                "errors": [{"field": "birthday", "reason": "must be in the past"}],
            },
        ),
        ("forbidden", 403, {"detail": "customer belongs to another owner"}),
        ("domain", 400, {"detail": "points cannot be negative"}),
    ],
)
async def test_domain_errors_map_to_their_status(
    client: httpx.AsyncClient, kind: str, status: int, body: dict[str, object]
) -> None:
    response = await client.get(f"/refusals/{kind}")

    assert response.status_code == status
    assert problem_of(response) == body
    assert "X-Request-ID" in response.headers


async def test_an_unexpected_exception_is_a_500_with_a_generic_body(
    client: httpx.AsyncClient, capsys: pytest.CaptureFixture[str]
) -> None:
    response = await client.get("/bug", headers={"X-Request-ID": "req-bug"})

    assert response.status_code == 500
    assert response.json() == {
        "type": "about:blank",
        "title": "Internal Server Error",
        "status": 500,
        "detail": "internal error",
        "instance": "/bug",
        "request_id": "req-bug",
    }
    assert response.headers["X-Request-ID"] == "req-bug"
    assert "a bug on our side" not in response.text
    logged = capsys.readouterr().out
    assert "request_failed" in logged and "ZeroDivisionError" in logged


# --- auth wiring ---------------------------------------------------------------------


async def test_endpoints_are_protected_with_the_settings_keys(client: httpx.AsyncClient) -> None:
    body = {"email": "ana@example.com", "name": "Ana"}

    assert (await client.post("/customers", json=body)).status_code == 401
    viewer = issue_token(SETTINGS.auth(), "u-2", "acme", ["viewer"])
    forbidden = await client.post("/customers", json=body,
                                  headers={"Authorization": f"Bearer {viewer}"})
    assert forbidden.status_code == 403
    allowed = await client.post("/customers", json=body, headers=sales_token())
    assert allowed.status_code == 201
    assert allowed.json()["tenant"] == "acme"


# --- If-Match ------------------------------------------------------------------------


@pytest.mark.parametrize(("header", "version"), [('"3"', 3), ("3", 3), ('W/"3"', 3)])
async def test_if_match_gives_the_expected_version(
    client: httpx.AsyncClient, header: str, version: int
) -> None:
    response = await client.put("/customers/c-1", headers={"If-Match": header})

    assert response.json() == {"expected_version": version}


async def test_no_if_match_means_no_expectation(client: httpx.AsyncClient) -> None:
    response = await client.put("/customers/c-1")

    assert response.json() == {"expected_version": None}


async def test_a_garbage_if_match_is_422(client: httpx.AsyncClient) -> None:
    response = await client.put("/customers/c-1", headers={"If-Match": "banana"})

    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "If-Match"


# --- health and metrics ----------------------------------------------------------------


async def test_healthz_answers(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "service": "contacts-test", "version": "1.2.3"}


@pytest.mark.parametrize("path", ["/metrics", "/metrics/"])
async def test_metrics_answer_in_prometheus_text(client: httpx.AsyncClient, path: str) -> None:
    await client.get("/customers", params={"limit": "5"})

    response = await client.get(path)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert "# TYPE crm_events_appended_total counter" in response.text
    assert (
        'crm_http_requests_total{method="GET",route="/customers",service="contacts-test",'
        'status="200"}' in response.text
    )


async def test_the_openapi_document_has_the_bearer_scheme(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()

    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert "/healthz" not in schema["paths"]


async def test_requests_are_counted_by_route_template_not_raw_path(
    client: httpx.AsyncClient,
) -> None:
    await client.put("/customers/c-123", headers={"If-Match": '"1"'})
    await client.get("/no-such-thing/c-123")

    text = (await client.get("/metrics")).text

    assert 'route="/customers/{customer_id}"' in text
    assert 'route="unmatched",service="contacts-test",status="404"' in text
    assert "c-123" not in text


async def test_an_oversized_body_nobody_reads_is_413_not_a_logged_failure(
    client: httpx.AsyncClient, capsys: pytest.CaptureFixture[str]
) -> None:
    response = await client.request("GET", "/customers", content=b"x" * 10_000)

    assert response.status_code == 413
    assert "request_failed" not in capsys.readouterr().out


def access_lines(out: str) -> list[dict[str, object]]:
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("event") == "request"]


async def test_one_access_line_per_request_at_its_level(
    client: httpx.AsyncClient, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    await client.get("/customers")
    await client.get("/refusals/not_found")
    await client.get("/bug")

    levels = [(line["status"], line["level"]) for line in access_lines(capsys.readouterr().out)]

    assert levels == [(200, "info"), (404, "info"), (500, "error")]


async def test_a_request_the_gateway_logged_is_not_logged_again_by_the_service(
    client: httpx.AsyncClient, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    await client.get("/customers", headers={"X-Access-Logged-By": "gateway"})

    assert access_lines(capsys.readouterr().out) == []
