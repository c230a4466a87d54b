"""What every API takes from a request: the cursor, the bearer token, a command body."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta, timezone

import pytest
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, field_validator
from pydantic_core.core_schema import ValidationInfo

from libs.platform.dependencies import bearer_token, command_from, decode_cursor, encode_cursor
from libs.platform.errors import Unprocessable

AT = datetime(2026, 12, 7, 9, 30, tzinfo=UTC)


def test_a_cursor_gives_back_the_position_it_was_made_of() -> None:
    east = AT.astimezone(timezone(timedelta(hours=8)))

    assert decode_cursor(encode_cursor(AT, "c-1"), datetime, str) == (AT, "c-1")
    assert decode_cursor(encode_cursor(east, 40), datetime, int) == (east, 40)
    assert decode_cursor(encode_cursor(0), int) == (0,)


def _b64(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


ID = (datetime, str)
OFFSET = (datetime, int)


@pytest.mark.parametrize(
    ("cursor", "kinds"),
    [
        ("not base64 at all!", ID),
        (_b64("not json"), ID),
        (_b64('{"a": "2026-12-07T09:30:00+00:00", "k": "c-1"}'), ID),  # not a list
        (_b64('["2026-12-07T09:30:00+00:00"]'), ID),  # too short
        (_b64('["2026-12-07T09:30:00", "c-1"]'), ID),  # a time without its zone
        (_b64('["0001-01-01T00:00:00+01:00", "c-1"]'), ID),  # before what UTC holds
        (_b64('["2026-12-07T09:30:00+00:00", 7]'), ID),  # an offset for an id
        (_b64('["2026-12-07T09:30:00+00:00", "c-1"]'), OFFSET),  # an id for an offset
        (_b64('["2026-12-07T09:30:00+00:00", -1]'), OFFSET),
        (_b64('["2026-12-07T09:30:00+00:00", true]'), OFFSET),
        ("\u00e9t\u00e9", ID),
    ],
)
def test_anything_this_service_did_not_return_is_unprocessable(
    cursor: str, kinds: tuple[type[datetime], type[str] | type[int]]
) -> None:
    with pytest.raises(Unprocessable) as refused:
        decode_cursor(cursor, *kinds)

    assert refused.value.body()["errors"] == [
        {"field": "cursor", "reason": "is not a cursor this service returned"}
    ]


def _request(authorization: str | None) -> Request:
    headers = [] if authorization is None else [(b"authorization", authorization.encode())]
    return Request({"type": "http", "headers": headers})


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer abc.def.ghi", "abc.def.ghi"),
        ("bearer abc.def.ghi", "abc.def.ghi"),
        ("Basic dXNlcjpwdw==", None),
        ("Bearer ", None),
        (None, None),
    ],
)
def test_the_bearer_token_is_the_bare_token(header: str | None, token: str | None) -> None:
    assert bearer_token(_request(header)) == token


class _Visit(BaseModel):
    customer_id: str
    minutes: int

    @field_validator("minutes")
    @classmethod
    def _at_most_a_day(cls, minutes: int, info: ValidationInfo) -> int:
        ceiling = (info.context or {}).get("ceiling", 1440)
        if minutes > ceiling:
            raise ValueError(f"at most {ceiling}")
        return minutes


def test_a_command_takes_the_body_with_what_the_server_sets() -> None:
    visit = command_from(_Visit, {"minutes": 30, "customer_id": "forged"}, customer_id="c-1")

    assert visit == _Visit(customer_id="c-1", minutes=30)


def test_a_command_that_fails_validation_is_a_body_error() -> None:
    with pytest.raises(RequestValidationError) as refused:
        command_from(_Visit, {"minutes": 90}, context={"ceiling": 60}, customer_id="c-1")

    assert [e["loc"] for e in refused.value.errors()] == [("body", "minutes")]
