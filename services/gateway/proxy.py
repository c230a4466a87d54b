"""Forwarding: a request to the service that owns it, and the answer back, streamed both ways.

Big bodies are never held in memory: a 50 MB CSV import goes to contacts chunk by
chunk as it arrives, and a big export comes back the same way. An answer that
declares a small length (most of them: a profile, a 360 view) is read whole and
sent at once, which costs far less than a stream. What can go wrong
on the way has one status each, with a JSON body naming the upstream:

- 503: the service did not take the request (refused, no connection in time, no
  free connection in the pool). Nothing was done, so retrying is safe.
- 504: the request was sent but no answer came in time. It may or may not have
  happened; a client retries writes with If-Match or checks first.
- 502: the service broke the connection or answered something that is not HTTP.

A client is never allowed to hold a connection to a service while it makes up its
mind: a small body is read whole before a connection is taken, a big one must start
before, and every wait for the client's next bytes is bounded (408 after
``REQUEST_BODY_TIMEOUT_SECONDS``). Each request counts against its caller's and
tenant's requests in flight until its answer is forwarded, so a client that stalls
runs out of its own share, never the pool.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Mapping

import aiohttp
import httpx
import structlog
from fastapi import Request
from httpx_aiohttp import AiohttpTransport
from prometheus_client import Counter, Histogram
from starlette.requests import ClientDisconnect
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from libs.platform.app import (
    ACCESS_LOGGED_HEADER,
    CORRELATION_ID_HEADER,
    REQUEST_ID_HEADER,
    current_correlation_id,
    current_request_id,
)
from libs.platform.errors import DomainError, Unprocessable
from services.gateway.authentication import Caller
from services.gateway.rate_limit import InFlightLimits
from services.gateway.routes import Route
from services.gateway.settings import Settings

log = structlog.get_logger("crm.gateway")

# What a service may need from the client's request. Everything else stays at the
# gateway: cookies, the API key itself, any tenant header a client made up.
FORWARDED_REQUEST_HEADERS = frozenset(
    {
        "accept",
        "accept-encoding",
        "accept-language",
        "content-type",
        "content-length",
        "content-encoding",
        "if-match",
        "if-none-match",
        "if-modified-since",
        "if-unmodified-since",
        "idempotency-key",
        "prefer",
        "user-agent",
    }
)

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

UPSTREAM_REQUESTS = Counter(
    "crm_gateway_upstream_requests_total",
    "Requests forwarded to a service, by outcome (the status, or unavailable/timeout/failed)",
    ["upstream", "route", "outcome"],
)
UPSTREAM_SECONDS = Histogram(
    "crm_gateway_upstream_seconds",
    "Time from forwarding a request to the service's response headers",
    ["upstream", "route"],
)


class UpstreamUnavailable(DomainError):
    status_code = 503


class UpstreamTimedOut(DomainError):
    status_code = 504


class UpstreamFailed(DomainError):
    status_code = 502


class RequestBodyTimedOut(DomainError):
    """The client stopped sending its body. The connection is closed after the answer:
    what it still holds of the body would be read as the next request."""

    status_code = 408

    def __init__(self, seconds: float) -> None:
        super().__init__(
            f"the request body did not arrive in time ({seconds:g} s without progress)",
            headers={"Connection": "close"},
        )


class UpstreamTransport(AiohttpTransport):
    """aiohttp's pool behind httpx's API, with aiohttp's errors named as httpx names
    them: the transport's own mapping calls a refused connection a ConnectTimeout and
    a connection the service closed as it was reused a ConnectTimeout too, which would
    turn a safe retry into a 503."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return await super().handle_async_request(request)
        except httpx.TransportError as mapped:
            cause = mapped.__cause__
            precise = _httpx_error(cause) if isinstance(cause, aiohttp.ClientError) else None
            if precise is None:
                raise
            raise precise(str(cause), request=request) from cause


def _httpx_error(error: aiohttp.ClientError) -> type[httpx.TransportError] | None:
    match error:
        case aiohttp.ServerDisconnectedError():
            return httpx.RemoteProtocolError
        case aiohttp.ClientConnectorError():  # refused, unreachable, no such host
            return httpx.ConnectError
        case aiohttp.ConnectionTimeoutError():  # no connection in time, pooled or new
            return httpx.ConnectTimeout
        case aiohttp.SocketTimeoutError():
            return httpx.ReadTimeout
        case aiohttp.ClientOSError() | aiohttp.ClientPayloadError():
            return httpx.ReadError
    return None


def new_upstream_client(settings: Settings) -> httpx.AsyncClient:
    """The one pooled client every forwarded request shares."""
    timeout = httpx.Timeout(
        connect=settings.upstream_connect_timeout_seconds,
        read=settings.upstream_read_timeout_seconds,
        write=settings.upstream_read_timeout_seconds,
        # Waiting for a free pooled connection: the gateway's own overload, a 503.
        pool=settings.upstream_pool_timeout_seconds,
    )
    limits = httpx.Limits(
        max_connections=settings.upstream_max_connections,
        max_keepalive_connections=settings.upstream_max_connections,
        keepalive_expiry=settings.upstream_keepalive_seconds,
    )
    # httpx's API over aiohttp's connection pool (docs/decisions/0007): httpcore walks
    # every pooled connection on each request, which cost the gateway more CPU than
    # the forwarding itself at a few dozen connections.
    # trust_env=False: HTTP(S)_PROXY is for the internet, never for calls between services.
    transport = UpstreamTransport(limits=limits, trust_env=False)
    return httpx.AsyncClient(timeout=timeout, transport=transport, trust_env=False)


class ForwardedResponse(StreamingResponse):
    """The service's response, streamed as it arrives; the connection goes back to
    the pool however the stream ends (finished, client gone, upstream broken)."""

    def __init__(self, upstream: httpx.Response) -> None:
        super().__init__(_forwarded_body(upstream), status_code=upstream.status_code)
        self.raw_headers = _forwarded_headers(upstream)
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


def _forwarded_headers(upstream: httpx.Response) -> list[tuple[bytes, bytes]]:
    return [
        (name.lower(), value)
        for name, value in upstream.headers.raw
        if name.lower() not in DROPPED_RESPONSE_HEADERS
    ]


def _small(upstream: httpx.Response) -> bool:
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


def _utf8(name: str, value: bytes) -> bytes:
    """``value`` if it is UTF-8 text (ASCII included); a 422 naming the header if not."""
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        field = "-".join(part.capitalize() for part in name.split("-"))
        raise Unprocessable(field, "the value is neither ASCII nor UTF-8 text") from None
    return value


class UpstreamProxy:
    def __init__(
        self,
        client: httpx.AsyncClient,
        upstreams: Mapping[str, str],
        *,
        in_flight: InFlightLimits | None = None,
        body_timeout_seconds: float = 10.0,
    ) -> None:
        self.client = client
        self.upstreams = dict(upstreams)
        self.in_flight = in_flight or InFlightLimits(per_caller=0, per_tenant=0)
        self.body_timeout_seconds = body_timeout_seconds

    async def forward(self, request: Request, route: Route, caller: Caller | None) -> Response:
        """The service's answer; the request counts as the caller's until it is forwarded.

        ``caller`` None: a path holding its own credential (a survey link), sent without
        any Authorization of the caller's and counted under the client's address."""
        if caller is not None:
            held = self.in_flight.hold(caller.principal.tenant_id, caller.principal.subject)
        else:
            client = request.client.host if request.client is not None else "unknown"
            held = self.in_flight.hold("", f"link:{client}")
        try:
            response = await self._forward(request, route, caller)
        except BaseException:
            held.release()
            raise
        if isinstance(response, ForwardedResponse):
            response.on_close(held.release)
        else:
            held.release()
        return response

    async def _forward(self, request: Request, route: Route, caller: Caller | None) -> Response:
        upstream = route.upstream
        url = self._url(request, upstream)
        headers = self._headers(request, caller)
        has_body = "content-length" in request.headers or "transfer-encoding" in request.headers
        body = ClientBody(request, self.body_timeout_seconds) if has_body else None
        try:
            content = await self._content(request, body)
        except ClientDisconnect:
            self._count(route, "client_gone")
            return Response(status_code=499)
        except RequestBodyTimedOut:
            self._count(route, "client_timeout")
            raise
        # One retry only where it cannot do harm: a read without a body whose pooled
        # connection the service closed just as it was reused.
        attempts = 2 if request.method in ("GET", "HEAD") and not has_body else 1
        started_at = time.perf_counter()
        try:
            response = await self._send(request, route, url, headers, body, content, attempts)
        except RequestBodyTimedOut:
            self._count(route, "client_timeout")
            raise
        if response is None:  # the client went away while sending its body
            self._count(route, "client_gone")
            return Response(status_code=499)
        UPSTREAM_SECONDS.labels(upstream, route.template).observe(time.perf_counter() - started_at)
        return await self._answer_from(route, response)

    async def _content(
        self, request: Request, body: ClientBody | None
    ) -> bytes | AsyncIterator[bytes] | None:
        """What goes up as the body: a small one whole, a big one as a stream whose
        first part has arrived. Either way before any upstream connection is taken."""
        if body is None:
            return None
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) <= BUFFERED_BODY_BYTES:
            return await body.read_whole()
        first = await body.next_chunk()
        return b"" if first is None else body.stream(first)

    async def _send(
        self,
        request: Request,
        route: Route,
        url: str,
        headers: list[tuple[bytes, bytes]],
        body: ClientBody | None,
        content: bytes | AsyncIterator[bytes] | None,
        attempts: int,
    ) -> httpx.Response | None:
        upstream = route.upstream
        for attempt in range(1, attempts + 1):
            try:
                upstream_request = self.client.build_request(
                    request.method, url, headers=headers, content=content
                )
                try:
                    return await self.client.send(upstream_request, stream=True)
                except Exception:
                    # The client's failure, surfacing as a broken upstream connection:
                    # answered for what it is (408, client gone, 413), not as a 502.
                    if body is not None and body.failure is not None:
                        raise body.failure from None
                    raise
            except httpx.RemoteProtocolError as broken:
                if attempt < attempts:
                    continue
                self._count(route, "failed")
                raise UpstreamFailed(
                    f"{upstream} broke the connection", upstream=upstream
                ) from broken
            except httpx.PoolTimeout as busy:
                self._count(route, "unavailable")
                raise UpstreamUnavailable(
                    f"the gateway has no free connection to {upstream}",
                    headers={"Retry-After": "1"},
                    upstream=upstream,
                ) from busy
            except (httpx.ConnectError, httpx.ConnectTimeout) as down:
                self._count(route, "unavailable")
                log.warning("upstream_unavailable", upstream=upstream, error=repr(down))
                raise UpstreamUnavailable(
                    f"{upstream} is unavailable", headers={"Retry-After": "5"}, upstream=upstream
                ) from down
            except httpx.TimeoutException as slow:
                raise self._timed_out(route, slow) from slow
            except httpx.TransportError as broken:
                raise self._broken(route, broken) from broken
            except httpx.InvalidURL:
                raise DomainError("this path cannot be forwarded") from None
            except ClientDisconnect:
                # The caller gave up while sending its body; nobody is left to answer.
                return None
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _answer_from(self, route: Route, response: httpx.Response) -> Response:
        if not _small(response):
            self._count(route, str(response.status_code))
            return ForwardedResponse(response)
        try:
            body = b"".join([chunk async for chunk in response.aiter_raw()])
        except httpx.TimeoutException as slow:
            raise self._timed_out(route, slow) from slow
        except httpx.HTTPError as broken:
            raise self._broken(route, broken) from broken
        finally:
            await response.aclose()
        self._count(route, str(response.status_code))
        forwarded = Response(body, status_code=response.status_code)
        forwarded.raw_headers = _forwarded_headers(response)
        return forwarded

    def _url(self, request: Request, upstream: str) -> str:
        # The raw path, not the decoded one: an id containing %2F must stay one segment.
        raw_path: bytes = request.scope.get("raw_path") or request.url.path.encode()
        url = self.upstreams[upstream] + raw_path.decode("latin-1")
        query: bytes = request.scope.get("query_string", b"")
        return f"{url}?{query.decode('latin-1')}" if query else url

    def _headers(self, request: Request, caller: Caller | None) -> list[tuple[bytes, bytes]]:
        # Bytes as they came, never re-encoded: a header value may hold UTF-8 beyond
        # ASCII (a browser's User-Agent), and the service judges it. The upstream
        # pool writes header values as UTF-8, so other bytes cannot go up unchanged;
        # dropping the header instead could turn a conditional write (If-Match)
        # into an unconditional one.
        headers: list[tuple[bytes, bytes]] = []
        earlier_forwarded_for: bytes | None = None
        host: bytes | None = None
        for raw_name, value in request.headers.raw:
            name = raw_name.decode("latin-1").lower()
            if name == "x-forwarded-for":
                earlier_forwarded_for = _utf8(name, value)
            elif name == "host":
                host = _utf8(name, value)
            elif name in FORWARDED_REQUEST_HEADERS:
                headers.append((raw_name, _utf8(name, value)))
        if caller is not None:
            headers.append((b"authorization", caller.upstream_authorization.encode("latin-1")))
        # The service's middleware adopts these ids, so its log lines and the
        # correlationid of the events it appends match the gateway's.
        request_id = current_request_id()
        correlation_id = current_correlation_id()
        if request_id:
            headers.append((REQUEST_ID_HEADER.encode(), request_id.encode("latin-1")))
        headers.append((ACCESS_LOGGED_HEADER.encode(), b"gateway"))
        if correlation_id:
            headers.append((CORRELATION_ID_HEADER.encode(), correlation_id.encode("latin-1")))
        client = request.client.host if request.client else None
        if client:
            hop = client.encode("latin-1")
            forwarded_for = earlier_forwarded_for + b", " + hop if earlier_forwarded_for else hop
            headers.append((b"x-forwarded-for", forwarded_for))
        headers.append((b"x-forwarded-proto", request.url.scheme.encode("latin-1")))
        if host is not None:
            headers.append((b"x-forwarded-host", host))
        return headers

    def _timed_out(self, route: Route, slow: httpx.HTTPError) -> UpstreamTimedOut:
        self._count(route, "timeout")
        log.warning("upstream_timed_out", upstream=route.upstream, error=repr(slow))
        return UpstreamTimedOut(f"{route.upstream} did not answer in time", upstream=route.upstream)

    def _broken(self, route: Route, broken: httpx.HTTPError) -> UpstreamFailed:
        self._count(route, "failed")
        log.warning("upstream_failed", upstream=route.upstream, error=repr(broken))
        return UpstreamFailed(f"{route.upstream} broke the connection", upstream=route.upstream)

    @staticmethod
    def _count(route: Route, outcome: str) -> None:
        UPSTREAM_REQUESTS.labels(route.upstream, route.template, outcome).inc()
