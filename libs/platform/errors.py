"""Domain errors and the HTTP status each one means.

Services subclass these with names from the business (``DuplicateCustomer(Conflict)``,
``StaleVersion(PreconditionFailed)``); the app factory turns any of them into
its status code and a problem-details body (RFC 9457, ``application/problem+json``),
so ``api.py`` needs no try/except per error.

Bodies (``libs.platform.problems`` adds ``instance`` and ``request_id``):
- every error: ``{"type", "title", "status", "detail", **extra}``, e.g. a
  ``Conflict`` with ``existing_id`` so the caller can go to the customer that
  already exists;
- ``Unprocessable`` adds ``errors: [{"field": "email", "reason": "..."}]``, the
  same member a request that failed validation carries, so clients parse one format.
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any, ClassVar, TypedDict

# Members of a problem the platform sets itself; an extra must not overwrite them.
RESERVED_MEMBERS = frozenset({"type", "title", "status", "detail", "instance", "errors"})


class FieldIssue(TypedDict):
    field: str
    reason: str


# RFC 9110's names, where older Pythons still use RFC 7231's.
_PHRASES = {413: "Content Too Large", 422: "Unprocessable Content"}


def status_title(status: int) -> str:
    """The title RFC 9457 asks for with ``type: about:blank``: the status's phrase."""
    if status in _PHRASES:
        return _PHRASES[status]
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


class DomainError(Exception):
    """A request the domain refuses. A bare DomainError is a generic 400."""

    status_code: ClassVar[int] = 400

    def __init__(
        self, detail: str, /, *, headers: Mapping[str, str] | None = None, **extra: Any
    ) -> None:
        clashing = RESERVED_MEMBERS & extra.keys()
        if clashing:
            raise TypeError(f"{sorted(clashing)} are members of every problem, not extras")
        super().__init__(detail)
        self.detail = detail
        self.extra: dict[str, Any] = dict(extra)
        self.headers: dict[str, str] | None = dict(headers) if headers else None

    def body(self) -> dict[str, Any]:
        return {
            "type": "about:blank",
            "title": status_title(self.status_code),
            "status": self.status_code,
            "detail": self.detail,
            **self.extra,
        }


class NotFound(DomainError):
    status_code = 404


class Conflict(DomainError):
    """The request clashes with the current state (a duplicate, a stale version)."""

    status_code = 409


class PreconditionFailed(DomainError):
    """An If-Match precondition did not hold: someone else changed it first."""

    status_code = 412


class Forbidden(DomainError):
    """Authenticated, but this caller may not do this to this resource."""

    status_code = 403


class Unprocessable(DomainError):
    """Well-formed, but a field breaks a business rule."""

    status_code = 422

    def __init__(
        self, field: str, reason: str, *, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(f"{field}: {reason}", headers=headers)
        self.field = field
        self.reason = reason

    def body(self) -> dict[str, Any]:
        issue: FieldIssue = {"field": self.field, "reason": self.reason}
        return {**super().body(), "errors": [issue]}
