"""What every service's HTTP API takes from a request, written once (decision 0091).

* a command validated the way a request body is (``command_from``), so its errors are
  the usual 422 with ``errors: [{field, reason}]``, and ``Body``, the base of request
  bodies that refuse a misspelt field;
* the caller's bearer token (``bearer_token``): the bare token, without "Bearer ",
  wherever a service forwards it (to ask contacts about a customer);
* ``ETag: "<version>"`` on an answer about one aggregate and ``If-Match`` on a write
  (``etag_for``, ``IfMatch``): 412 when the aggregate is at another version;
* the cursor of a keyset page (``encode_cursor``, ``decode_cursor``): opaque to the
  caller, and a 422 naming ``cursor`` for anything this service did not return;
* ``Idempotency-Key`` on a request that creates something: a retry with the same key
  gets the first answer (``IdempotencyKey``).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Header, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, ValidationError

from libs.platform.errors import Unprocessable
from libs.platform.if_match import etag_for, if_match_version
from libs.platform.types import OUT_OF_RANGE, in_utc, representable

__all__ = [
    "Body",
    "IdempotencyKey",
    "IfMatch",
    "bearer_token",
    "body_errors",
    "command_from",
    "decode_cursor",
    "encode_cursor",
    "etag_for",
]

M = TypeVar("M", bound=BaseModel)

IfMatch = Annotated[int | None, Depends(if_match_version)]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        pattern=r"^[A-Za-z0-9._:-]{1,64}$",
        description="one key, one request: a retry with it gets the first answer",
    ),
]
NOT_A_CURSOR = "is not a cursor this service returned"


class Body(BaseModel):
    # A misspelt field must not pass silently.
    model_config = ConfigDict(extra="forbid")


def body_errors(invalid: ValidationError) -> RequestValidationError:
    """``invalid`` as a request body's 422: each error located under ``body``."""
    return RequestValidationError(
        [{**e, "loc": ("body", *e["loc"])} for e in invalid.errors(include_input=False)]
    )


def command_from(
    model: type[M],
    data: Mapping[str, Any],
    *,
    context: Mapping[str, Any] | None = None,
    **server_set: Any,
) -> M:
    """Validate a command the way a request body is, so errors are the usual 422;
    ``server_set`` are the fields the server fills (the path's id), ``context`` what the
    model's validators read (a default phone region)."""
    try:
        return model.model_validate({**data, **server_set}, context=context)
    except ValidationError as invalid:
        raise body_errors(invalid) from None


def bearer_token(request: Request) -> str | None:
    """The caller's bearer token without its scheme (None without one), to forward with
    ``Authorization: Bearer <token>`` when another service must be asked for the caller."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token if scheme.lower() == "bearer" and token else None


# --- the cursor of a keyset page -----------------------------------------------------


def encode_cursor(*position: datetime | str | int) -> str:
    """The opaque cursor of the page after ``position`` (a time, an id, an offset)."""
    raw = json.dumps([p.isoformat() if isinstance(p, datetime) else p for p in position])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, *kinds: type[datetime] | type[str] | type[int]) -> tuple[Any, ...]:
    """The position ``cursor`` holds, one value of each of ``kinds`` (an aware time, an
    id, an offset not below 0); a 422 naming ``cursor`` for anything not ours."""
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(raw, list) or len(raw) != len(kinds):
            raise ValueError(cursor)
        return tuple(_part(value, kind) for value, kind in zip(raw, kinds, strict=True))
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise Unprocessable("cursor", NOT_A_CURSOR) from None


def _part(value: Any, kind: type[datetime] | type[str] | type[int]) -> Any:
    if kind is datetime:
        at = datetime.fromisoformat(value)
        if at.tzinfo is None:
            raise ValueError(value)
        # Ours to read back, so a sentinel (a never-bought 9999-12-31) passes; a forged
        # time UTC cannot hold is a ValueError like any other.
        return representable(at)
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(value)
        return value
    if not isinstance(value, str):
        raise ValueError(value)
    return value


def moment_query(name: str, value: str | None, *, end_of_day: bool) -> datetime | None:
    """A time given in a query (``as_of``, ``from``, ``to``) in UTC: a day (its first
    or, with ``end_of_day``, its last microsecond) or an ISO 8601 time with its offset,
    inside the accepted range; a 422 naming ``name`` for anything else."""
    if value is None:
        return None
    try:
        if len(value) == 10:
            start = datetime.combine(date.fromisoformat(value), time(), UTC)
            when = start + timedelta(days=1, microseconds=-1) if end_of_day else start
        else:
            when = datetime.fromisoformat(value)
    except ValueError:
        raise Unprocessable(name, "a date (YYYY-MM-DD) or an ISO 8601 time") from None
    except OverflowError:
        raise Unprocessable(name, OUT_OF_RANGE) from None
    if when.tzinfo is None:
        raise Unprocessable(name, "a time needs its offset (Z or +08:00)")
    try:
        return in_utc(when)
    except ValueError:
        raise Unprocessable(name, OUT_OF_RANGE) from None
