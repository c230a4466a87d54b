"""Problem details (RFC 9457): the one body every error of the platform has.

``application/problem+json`` with ``type``, ``title``, ``status``, ``detail``,
``instance`` (the path asked for) and ``request_id`` (what support asks for), plus
``errors: [{field, reason}]`` on a 422 and whatever a domain error adds
(``existing_id`` on a duplicate, ``retry_after_seconds`` on a 429).

The OpenAPI side is derived, not listed by hand: an operation documents a status
when something on its route can answer it. Authentication (a security scheme) can
answer 401, and 503 while signing keys cannot be fetched; a dependency that checks
more says so with :func:`can_refuse` (``require(permission)``: 403; the gateway's
rate limit: 429); an ``If-Match`` header means 412; any parameter or body means
422; a path parameter means 404; a write can lose a race with another write (409).
Codes a route declares itself in ``responses=`` are kept, with the problem shape.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from fastapi import FastAPI, routing
from fastapi.dependencies.models import Dependant
from fastapi.responses import JSONResponse
from fastapi.security.base import SecurityBase

from libs.platform.errors import FieldIssue, status_title

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_SCHEMA_NAME = "Problem"
PROBLEM_REF = f"#/components/schemas/{PROBLEM_SCHEMA_NAME}"

# The attribute a dependency carries to say which statuses it can answer.
_STATUSES_ATTRIBUTE = "problem_statuses"
_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})

Call = TypeVar("Call", bound=Callable[..., Any])

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": PROBLEM_SCHEMA_NAME,
    "type": "object",
    "description": (
        "RFC 9457 problem details. Members beyond these name what the client can act on "
        "(existing_id on a duplicate, retry_after_seconds on a 429)."
    ),
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "description": "A URI naming the kind of problem"},
        "title": {"type": "string", "description": "The status's phrase for about:blank"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string", "description": "What went wrong with this request"},
        "instance": {"type": "string", "description": "The path that was asked for"},
        "request_id": {"type": "string", "description": "Quote it when asking for help"},
        "errors": {
            "type": "array",
            "description": "On a 422: every field refused, and why",
            "items": {
                "type": "object",
                "required": ["field", "reason"],
                "properties": {"field": {"type": "string"}, "reason": {"type": "string"}},
            },
        },
    },
    "additionalProperties": True,
}


def problem_body(
    status: int,
    detail: str,
    *,
    instance: str | None = None,
    request_id: str | None = None,
    errors: Sequence[FieldIssue] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": status_title(status),
        "status": status,
        "detail": detail,
    }
    if errors is not None:
        body["errors"] = list(errors)
    body.update(extra)
    if instance is not None:
        body["instance"] = instance
    if request_id is not None:
        body["request_id"] = request_id
    return body


def summarise(issues: Sequence[FieldIssue]) -> str:
    """The ``detail`` of a 422: the one refused field, or how many there are."""
    if len(issues) == 1:
        return f"{issues[0]['field']}: {issues[0]['reason']}"
    return f"{len(issues)} fields are invalid: " + ", ".join(i["field"] for i in issues)


class ProblemResponse(JSONResponse):
    media_type = PROBLEM_MEDIA_TYPE


def can_refuse(*statuses: int) -> Callable[[Call], Call]:
    """Mark a dependency as able to answer ``statuses`` (documented on every route using it)."""

    def mark(call: Call) -> Call:
        setattr(call, _STATUSES_ATTRIBUTE, (*getattr(call, _STATUSES_ATTRIBUTE, ()), *statuses))
        return call

    return mark


# --- OpenAPI -------------------------------------------------------------------------


def _dependants(dependant: Dependant) -> Iterator[Dependant]:
    yield dependant
    for sub in dependant.dependencies:
        yield from _dependants(sub)


def api_routes(routes: Sequence[Any]) -> Iterator[routing.RouteContext]:
    """Every API operation of an app, through included routers, as the OpenAPI sees it."""
    for context in routing.iter_route_contexts(routes):
        if isinstance(context.original_route, routing.APIRoute) and context.dependant is not None:
            yield context


def problem_statuses(route: routing.RouteContext, method: str) -> set[int]:
    """Every error status ``method`` on ``route`` can answer, from what the route depends on."""
    statuses: set[int] = set()
    has_input = False
    assert route.dependant is not None
    for dependant in _dependants(route.dependant):
        statuses.update(getattr(dependant.call, _STATUSES_ATTRIBUTE, ()))
        if isinstance(dependant.call, SecurityBase):
            statuses.update((401, 503))
        if any(param.alias.lower() == "if-match" for param in dependant.header_params):
            statuses.add(412)
        if dependant.path_params:
            statuses.add(404)
        if (
            dependant.path_params
            or dependant.query_params
            or dependant.header_params
            or dependant.cookie_params
            or dependant.body_params
        ):
            has_input = True
    if has_input:
        statuses.add(422)
    if method in _WRITES:
        statuses.add(409)
    statuses.update(
        int(code) for code in route.responses if str(code).isdigit() and int(code) >= 400
    )
    return statuses


def problem_response_doc(description: str | None, status: int) -> dict[str, Any]:
    return {
        "description": description or status_title(status),
        "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": PROBLEM_REF}}},
    }


def publish_problems(document: dict[str, Any], routes: Sequence[Any]) -> dict[str, Any]:
    """``document`` with the problem shape on every operation, for every status it can answer."""
    paths: Mapping[str, Any] = document.get("paths", {})
    for route in api_routes(routes):
        if not route.include_in_schema or route.path_format is None:
            continue
        item = paths.get(route.path_format)
        if item is None:
            continue
        for method in route.methods or ():
            operation = item.get(method.lower())
            if operation is None:
                continue
            # FastAPI's own 422 says "Validation Error"; ours says what it is.
            operation.get("responses", {}).pop("422", None)
            document_problems(operation, sorted(problem_statuses(route, method)))
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas[PROBLEM_SCHEMA_NAME] = PROBLEM_SCHEMA
    # FastAPI's validation-error shapes are never sent: leave them out.
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    return document


def document_problems(operation: dict[str, Any], statuses: Sequence[int]) -> None:
    """Add ``statuses`` (problem shape) to an operation's responses, keeping descriptions."""
    responses = operation.setdefault("responses", {})
    for status in statuses:
        existing = responses.get(str(status), {})
        responses[str(status)] = problem_response_doc(existing.get("description"), status)


def install_problem_openapi(app: FastAPI) -> None:
    """Make ``app.openapi()`` publish the problem shape (computed once, then cached)."""
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = publish_problems(original(), app.routes)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


__all__ = [
    "PROBLEM_MEDIA_TYPE",
    "ProblemResponse",
    "can_refuse",
    "document_problems",
    "install_problem_openapi",
    "problem_body",
    "problem_response_doc",
    "problem_statuses",
    "publish_problems",
    "summarise",
]


def unparseable_body(cause: BaseException | None) -> str:
    """Why a JSON body could not be parsed at all (``cause``: the parser's error)."""
    if isinstance(cause, RecursionError):
        return "not valid JSON: nested deeper than the parser allows"
    if isinstance(cause, UnicodeDecodeError):
        return "not valid JSON: the body is not UTF-8"
    return "not valid JSON"
