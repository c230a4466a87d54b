"""parse_if_match: the version a caller expects, or a 422 for anything else."""

from __future__ import annotations

import pytest

from libs.platform.app import etag_for, parse_if_match
from libs.platform.errors import Unprocessable


@pytest.mark.parametrize(
    ("header", "version"),
    [
        ('"3"', 3),
        ("3", 3),
        ('W/"3"', 3),
        ('  "12" ', 12),
        ('"0"', 0),
        ('"007"', 7),
        (None, None),
        ("", None),
        ("*", None),
    ],
)
def test_accepted_forms(header: str | None, version: int | None) -> None:
    assert parse_if_match(header) == version


@pytest.mark.parametrize(
    "header",
    ['"abc"', "-1", '"3", "4"', 'w/"3"', '"3', "3.0", "\u0663", '"' + "9" * 19 + '"', 'W/ "3"'],
)
def test_garbage_is_unprocessable(header: str) -> None:
    with pytest.raises(Unprocessable) as refused:
        parse_if_match(header)

    assert refused.value.body()["errors"][0]["field"] == "If-Match"


def test_an_etag_round_trips() -> None:
    assert parse_if_match(etag_for(41)) == 41
