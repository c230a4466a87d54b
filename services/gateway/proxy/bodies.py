"""The bodies that pass through: the client's, read with a bound on every wait, and
the service's answer, streamed back with the headers that are the client's to see."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import httpx
import structlog
from fastapi import Request
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from libs.platform.errors import DomainError
from libs.platform.request_ids import CORRELATION_ID_HEADER, REQUEST_ID_HEADER

log = structlog.get_logger("crm.gateway")

# Hop-by-hop headers (RFC 9110 §7.6.1) describe one connection, not the message;
# date and server are the gateway's own to set; the ids are set by the gateway's
# middleware (and are the same ids the service received).
DROPPED_RESPONSE_HEADERS = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"date",
        b"server",
        REQUEST_ID_HEADER.lower().encode(),
        CORRELATION_ID_HEADER.lower().encode(),
    }
)

# Answers up to this declared length are read whole before they are forwarded.
BUFFERED_BODY_BYTES = 64 * 1024


class RequestBodyTimedOut(DomainError):
    """The client stopped sending its body. The connection is closed after the answer:
    what it still holds of the body would be read as the next request."""

    status_code = 408

    def __init__(self, seconds: float) -> None:
        super().__init__(
            f"the request body did not arrive in time ({seconds:g} s without progress)",
            headers={"Connection": "close"},
        )


class ForwardedResponse(StreamingResponse):
    """The service's response, streamed as it arrives; the connection goes back to
    the pool however the stream ends (finished, client gone, upstream broken)."""

    def __init__(self, upstream: httpx.Response) -> None:
        super().__init__(_forwarded_body(upstream), status_code=upstream.status_code)
        self.raw_headers = forwarded_headers(upstream)
        self._upstream = upstream
        self._on_close: list[Callable[[], None]] = []

    def on_close(self, callback: Callable[[], None]) -> None:
        self._on_close.append(callback)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            try:
                await self._upstream.aclose()
            finally:
                for callback in self._on_close:
                    callback()


def forwarded_headers(upstream: httpx.Response) -> list[tuple[bytes, bytes]]:
    return [
        (name.lower(), value)
        for name, value in upstream.headers.raw
        if name.lower() not in DROPPED_RESPONSE_HEADERS
    ]


def small(upstream: httpx.Response) -> bool:
    """A declared length within BUFFERED_BODY_BYTES (no length: a stream, forwarded as one)."""
    length = upstream.headers.get("content-length")
    return length is not None and length.isdigit() and int(length) <= BUFFERED_BODY_BYTES


async def _forwarded_body(upstream: httpx.Response) -> AsyncIterator[bytes]:
    try:
        # Raw: a compressed body stays compressed, matching the forwarded headers.
        async for chunk in upstream.aiter_raw():
            yield chunk
    except httpx.HTTPError as broken:
        # Too late for a status code: the client sees the connection cut short.
        log.warning("upstream_body_interrupted", url=str(upstream.request.url), error=repr(broken))
        raise


class ClientBody:
    """The client's request body, read with a bound on every wait for it.

    A failure while reading (408, the client gone, the body too big) is kept, so that
    when it surfaces inside the upstream client as a broken connection the client is
    still answered for what it did, not as if the service had failed.
    """

    def __init__(self, request: Request, timeout_seconds: float) -> None:
        self._chunks = request.stream().__aiter__()
        self.timeout_seconds = timeout_seconds
        self.failure: Exception | None = None

    async def read_whole(self) -> bytes:
        """All of a small body, which must arrive within the timeout."""
        chunks: list[bytes] = []
        try:
            async with asyncio.timeout(self.timeout_seconds):
                async for chunk in self._chunks:
                    chunks.append(chunk)
        except TimeoutError:
            raise RequestBodyTimedOut(self.timeout_seconds) from None
        return b"".join(chunks)

    async def next_chunk(self) -> bytes | None:
        """The next part of the body (None at its end), after at most the timeout."""
        try:
            async with asyncio.timeout(self.timeout_seconds):
                return await anext(self._chunks)
        except StopAsyncIteration:
            return None
        except TimeoutError:
            self.failure = RequestBodyTimedOut(self.timeout_seconds)
            raise self.failure from None
        except Exception as failed:
            self.failure = failed
            raise

    async def stream(self, first: bytes) -> AsyncIterator[bytes]:
        yield first
        while (chunk := await self.next_chunk()) is not None:
            yield chunk
