"""Reading the platform's error bodies (RFC 9457 problem details) in tests."""

from __future__ import annotations

from typing import Any

import httpx

from libs.platform.problems import PROBLEM_MEDIA_TYPE

_FRAME = ("type", "title", "status", "instance", "request_id")


def problem_of(response: httpx.Response) -> dict[str, Any]:
    """What this problem says beyond the frame every problem has.

    Checks the frame (media type, ``type``, ``title``, ``status`` equal to the
    response's, ``instance`` the path asked for) and returns the other members:
    ``detail``, ``errors`` and the error's own extras.
    """
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE, response.headers
    body = response.json()
    assert isinstance(body, dict), body
    assert body["status"] == response.status_code, body
    assert isinstance(body["type"], str) and isinstance(body["title"], str), body
    assert isinstance(body["detail"], str), body
    if "instance" in body:
        assert body["instance"] == response.request.url.path, body
    return {name: value for name, value in body.items() if name not in _FRAME}
