"""The request body-size limit (``MAX_REQUEST_BODY_BYTES``) answered in the platform's
error shape: a 413 problem naming the limit, never Starlette's plain text."""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from libs.platform.problems import PROBLEM_MEDIA_TYPE, problem_body
from libs.platform.tracing import traced_server


def too_large(max_bytes: int) -> dict[str, Any]:
    """The 413 problem for a body past ``max_bytes``."""
    return problem_body(
        413, f"the request body is larger than {max_bytes} bytes", max_bytes=max_bytes
    )


class JsonTooLarge:
    """The body-size limit's 413 in the platform's JSON error shape.

    Starlette's limiter sits outside every middleware and handler of ours and
    answers in plain text (or, for a body without a declared length, with its own
    detail); this wraps the whole stack and rewrites exactly those answers. A 413
    with any other body (one a service behind the gateway gave) passes unchanged.
    """

    _LIMITER_BODIES = frozenset({b"Content Too Large", b'{"detail":"Content Too Large"}'})

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.body = json.dumps(too_large(max_bytes)).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        held: Message | None = None
        held_body = b""

        async def send_json(message: Message) -> None:
            nonlocal held, held_body
            if message["type"] == "http.response.start" and message["status"] == 413:
                held = message  # tiny: wait for its body to know whose answer it is
                return
            if held is None or message["type"] != "http.response.body":
                await send(message)
                return
            held_body += message.get("body", b"")
            if message.get("more_body", False):
                return
            if held_body in self._LIMITER_BODIES:
                kept = [
                    (name, value)
                    for name, value in held.get("headers", [])
                    if name.lower() not in (b"content-type", b"content-length")
                ]
                headers = [
                    *kept,
                    (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
                    (b"content-length", str(len(self.body)).encode()),
                ]
                await send({**held, "headers": headers})
                await send({"type": "http.response.body", "body": self.body})
            else:
                await send(held)
                await send({"type": "http.response.body", "body": held_body})
            held = None

        await self.app(scope, receive, send_json)


class ServiceApp(FastAPI):
    """FastAPI with the body-size limit's answer in the platform's error shape, and a
    server span per request when traces are on."""

    def build_middleware_stack(self) -> ASGIApp:
        stack = super().build_middleware_stack()
        if self.max_body_size is not None:
            stack = JsonTooLarge(stack, max_bytes=self.max_body_size)
        return traced_server(stack)
