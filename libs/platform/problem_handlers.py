"""The exception handlers that answer every refusal as an RFC 9457 problem.

- 401/403 from ``libs.auth``, 404/405 from routing: the status and its ``detail``;
- a request that fails validation, or an ``Unprocessable`` domain error:
  422 with ``errors: [{"field": "email", "reason": "..."}]``;
- any other ``DomainError``: its status, its ``detail`` and its extra members.

Anything unexpected is not theirs: ``libs.platform.request_context`` answers it (500).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from libs.platform.body_limit import too_large
from libs.platform.errors import DomainError, FieldIssue
from libs.platform.problems import (
    ProblemResponse,
    install_problem_openapi,
    problem_body,
    summarise,
    unparseable_body,
)
from libs.platform.request_ids import current_request_id

log = structlog.get_logger("crm.http")

_LOCATIONS = frozenset({"body", "query", "path", "header", "cookie"})


def _field_name(location: Sequence[Any]) -> str:
    parts = [str(part) for part in location]
    if len(parts) > 1 and parts[0] in _LOCATIONS:
        parts = parts[1:]
    return ".".join(parts)


def _reason(error: Mapping[str, Any]) -> str:
    message = str(error.get("msg", "invalid value"))
    # pydantic prefixes a validator's own message; the caller only needs the message.
    return message.removeprefix("Value error, ")


def _problem(
    request: Request, body: dict[str, Any], headers: Mapping[str, str] | None = None
) -> ProblemResponse:
    body = {**body, "instance": request.url.path, "request_id": current_request_id()}
    return ProblemResponse(jsonable_encoder(body), status_code=body["status"], headers=headers)


async def _validation_failed(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    # Deliberately no "input": it would echo personal data (emails, phones) back.
    issues: list[FieldIssue] = []
    for error in exc.errors():
        field = "body" if error.get("type") == "json_invalid" else _field_name(error["loc"])
        issues.append({"field": field, "reason": _reason(error)})
    return _problem(request, problem_body(422, summarise(issues), errors=issues))


async def _domain_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    log.info("request_refused", error=type(exc).__name__, status=exc.status_code)
    return _problem(request, exc.body(), exc.headers)


_UNPARSEABLE_BODY = "There was an error parsing the body"  # FastAPI's, for any such body


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    """Routing's 404/405 and ``libs.auth``'s 401/403/503, in the same shape."""
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    max_bytes = getattr(request.app, "max_body_size", None)
    if exc.status_code == 413 and max_bytes is not None:
        # The body-size limit, noticed while reading a body without a declared length.
        return _problem(request, too_large(max_bytes), exc.headers)
    if exc.status_code == 400 and detail == _UNPARSEABLE_BODY:
        # FastAPI's answer to a body its parser gave up on (not UTF-8, too deep): bad
        # input like malformed JSON, already a 422 naming the body: one status for all.
        issue: FieldIssue = {"field": "body", "reason": unparseable_body(exc.__cause__)}
        return _problem(request, problem_body(422, summarise([issue]), errors=[issue]))
    return _problem(request, problem_body(exc.status_code, detail), exc.headers)



def install_problem_handlers(app: FastAPI) -> None:
    """Every refusal as a problem, and the problem responses on every OpenAPI operation."""
    app.add_exception_handler(RequestValidationError, _validation_failed)
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    install_problem_openapi(app)
