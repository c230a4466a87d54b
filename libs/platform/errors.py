"""Domain errors and the HTTP status each one means.

Services subclass these with names from the business (``DuplicateCustomer(Conflict)``,
``StaleVersion(PreconditionFailed)``); the app factory turns any of them into
its status code and a JSON body, so ``api.py`` needs no try/except per error.

Bodies:
- ``Unprocessable``: ``{"detail": [{"field": "email", "reason": "..."}]}``, the same
  shape as a request that failed validation, so clients parse one format;
- every other error: ``{"detail": "<message>", **extra}``, e.g. a ``Conflict`` with
  ``existing_id`` so the caller can go to the customer that already exists.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, TypedDict


class FieldIssue(TypedDict):
    field: str
    reason: str


class DomainError(Exception):
    """A request the domain refuses. A bare DomainError is a generic 400."""

    status_code: ClassVar[int] = 400

    def __init__(
        self, detail: str, /, *, headers: Mapping[str, str] | None = None, **extra: Any
    ) -> None:
        if "detail" in extra:
            raise TypeError("'detail' is the message itself, not an extra field")
        super().__init__(detail)
        self.detail = detail
        self.extra: dict[str, Any] = dict(extra)
        self.headers: dict[str, str] | None = dict(headers) if headers else None

    def body(self) -> dict[str, Any]:
        return {"detail": self.detail, **self.extra}


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
        return {"detail": [issue]}
