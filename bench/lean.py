"""A lean HTTP/1.1 client for the load generator: one keep-alive connection, httptools.

The benchmarks measure the platform, so the client that loads it must cost little:
httpx spent about 2.2 ms of CPU per request here (a third of a 2-core machine at the
platform's rates), this client about a tenth of that. It speaks only what the
benchmarks need: GET and POST with a JSON body, one request at a time per
connection, a fresh connection when the last one was idle too long or broke.

Failures are ``httpx.TransportError`` subclasses, so callers catch one family of
errors whichever client they hold.
"""

from __future__ import annotations

import asyncio
import json as jsonlib
import time
from typing import Any
from urllib.parse import urlencode, urlsplit

import httptools
import httpx

# Under uvicorn's 5 s keep-alive, so a connection is not reused as the server closes it.
KEEPALIVE_SECONDS = 4.0


class ConnectionBroken(httpx.TransportError):
    """The connection failed or closed before a whole answer came."""


class AnswerTimedOut(httpx.TimeoutException):
    """No whole answer within the client's timeout."""


class LeanResponse:
    def __init__(self, status_code: int, headers: dict[str, str], content: bytes) -> None:
        self.status_code = status_code
        self.headers = headers
        self.content = content

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return jsonlib.loads(self.content)

    def raise_for_status(self) -> None:
        if self.status_code >= 400:
            raise ConnectionBroken(f"HTTP {self.status_code}: {self.text[:300]}")


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection; ``answer`` is the future of the request in flight."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.answer: asyncio.Future[LeanResponse] | None = None
        self.headers: dict[str, str] = {}
        self.body: list[bytes] = []
        self.keep_alive = True
        self.closed = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ConnectionBroken(f"not HTTP: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(ConnectionBroken(f"connection closed: {exc!r}"))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.keep_alive = self.parser.should_keep_alive()
        answer, self.answer = self.answer, None
        if answer is not None and not answer.done():
            status = self.parser.get_status_code()
            answer.set_result(LeanResponse(status, self.headers, b"".join(self.body)))

    def send(self, request: bytes) -> asyncio.Future[LeanResponse]:
        assert self.transport is not None
        self.headers, self.body = {}, []
        self.answer = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return self.answer

    def _fail(self, error: Exception) -> None:
        answer, self.answer = self.answer, None
        if answer is not None and not answer.done():
            answer.set_exception(error)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class LeanClient:
    """``base_url`` + one connection; headers sent with every request."""

    def __init__(self, base_url: str, headers: dict[str, str], *, timeout: float) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or parts.hostname is None:
            raise ValueError(f"plain http://host:port only, not {base_url!r}")
        self.host, self.port = parts.hostname, parts.port or 80
        self.timeout = timeout
        fixed = {"host": f"{self.host}:{self.port}", **{k.lower(): v for k, v in headers.items()}}
        self._fixed = "".join(f"{name}: {value}\r\n" for name, value in fixed.items()).encode()
        self._connection: _Connection | None = None
        self._idle_since = 0.0

    async def get(self, path: str, *, params: dict[str, Any] | None = None) -> LeanResponse:
        target = f"{path}?{urlencode(params)}" if params else path
        return await self._request(b"GET", target, None, retry=True)

    async def post(self, path: str, *, json: Any) -> LeanResponse:
        body = jsonlib.dumps(json, ensure_ascii=False, separators=(",", ":")).encode()
        return await self._request(b"POST", path, body, retry=False)

    async def _request(self, method: bytes, target: str, body: bytes | None, *, retry: bool
                       ) -> LeanResponse:
        head = method + b" " + target.encode() + b" HTTP/1.1\r\n" + self._fixed
        if body is not None:
            head += b"content-type: application/json\r\ncontent-length: %d\r\n" % len(body)
        request = head + b"\r\n" + (body or b"")
        for attempt in (1, 2):
            reused = self._fresh_enough()
            connection = await self._connect()
            try:
                async with asyncio.timeout(self.timeout):
                    answer = await connection.send(request)
            except TimeoutError:
                connection.close()
                raise AnswerTimedOut(f"no answer within {self.timeout:g} s") from None
            except ConnectionBroken:
                connection.close()
                # A reused connection the server closed as we sent: safe to resend a GET.
                if retry and reused and attempt == 1:
                    continue
                raise
            if not connection.keep_alive:
                connection.close()
            self._idle_since = time.monotonic()
            return answer
        raise AssertionError("unreachable")

    def _fresh_enough(self) -> bool:
        connection = self._connection
        if connection is None or connection.closed:
            return False
        if time.monotonic() - self._idle_since > KEEPALIVE_SECONDS:
            connection.close()
            return False
        return True

    async def _connect(self) -> _Connection:
        if self._connection is not None and not self._connection.closed:
            return self._connection
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.timeout):
                _, connection = await loop.create_connection(_Connection, self.host, self.port)
        except (OSError, TimeoutError) as exc:
            raise ConnectionBroken(f"cannot connect to {self.host}:{self.port}: {exc!r}") from exc
        self._connection = connection
        return connection

    async def aclose(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    async def __aenter__(self) -> LeanClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
