"""No NUL character gets past a service's edge.

PostgreSQL stores no NUL (U+0000) in text or JSON: a value carrying one is a 500 there,
while SQLite takes it and the event it ends up in would then poison every PostgreSQL
projector that reads it. So every documented operation of every service refuses one
in a path parameter, a query parameter or anywhere in a JSON body, with the same 422
naming the field as any other invalid value, on both databases. The check runs as the
operation's last dependency (``libs.platform.routing.ServiceRouter``), after
authentication and authorisation: a caller without the right gets its 401 or 403 first.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError

NUL_REASON = "must not contain NUL characters"
_ESCAPED_NUL = b"\\u0000"


def _nul_locations(value: Any, location: tuple[str | int, ...]) -> Iterator[tuple[str | int, ...]]:
    if isinstance(value, str):
        if "\x00" in value:
            yield location
    elif isinstance(value, dict):
        for key, item in value.items():
            if "\x00" in key:
                yield (*location, key)
            else:
                yield from _nul_locations(item, (*location, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _nul_locations(item, (*location, index))


def _is_json(request: Request) -> bool:
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    return media_type == "application/json" or media_type.endswith("+json")


async def refuse_nul_characters(request: Request) -> None:
    locations: list[tuple[str | int, ...]] = [
        ("path", name) for name, value in request.path_params.items() if "\x00" in str(value)
    ]
    locations += [
        ("query", name) for name, value in request.query_params.multi_items() if "\x00" in value
    ]
    if _is_json(request):
        raw = await request.body()  # cached: the operation reads the same bytes
        if _ESCAPED_NUL in raw:  # a NUL can only be written so in valid JSON
            try:
                body = json.loads(raw)
            except ValueError:
                body = None  # not JSON: the operation's own validation says so
            locations += _nul_locations(body, ("body",))
    if locations:
        raise RequestValidationError(
            [{"type": "value_error", "loc": loc, "msg": NUL_REASON} for loc in locations]
        )
