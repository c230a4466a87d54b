"""ETag and If-Match: a stream's version as the optimistic lock HTTP clients hold."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Header

from libs.platform.errors import Unprocessable

# [0-9], not \d: \d also matches other scripts' digits, which int() would accept.
_VERSION_TAG = re.compile(r'(?:W/)?"([0-9]{1,18})"|([0-9]{1,18})')


def parse_if_match(header: str | None) -> int | None:
    """The stream version a caller expects, from ``If-Match``.

    Accepts ``"3"``, ``3`` and ``W/"3"``. Absent, empty or ``*`` means "no
    expectation" (None). Anything else, including several tags, is a 422.
    """
    if header is None:
        return None
    value = header.strip()
    if value in ("", "*"):
        return None
    match = _VERSION_TAG.fullmatch(value)
    if match is None:
        raise Unprocessable("If-Match", 'expected one version tag such as "3"')
    return int(match.group(1) or match.group(2))


def etag_for(version: int) -> str:
    """The ETag header value for a stream at ``version`` (what If-Match sends back)."""
    return f'"{version}"'


async def if_match_version(
    if_match: Annotated[str | None, Header(alias="If-Match")] = None,
) -> int | None:
    """Dependency: the parsed If-Match of the request (None when absent)."""
    return parse_if_match(if_match)
