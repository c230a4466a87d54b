"""Forwarding a request to the service that owns it, and its answer back."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping

import httpx
import structlog
from fastapi import Request
from prometheus_client import Counter, Histogram
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from libs.events.tracing import exemplar
from libs.platform.errors import DomainError, Unprocessable
from libs.platform.request_context import ACCESS_LOGGED_HEADER
from libs.platform.request_ids import (
    CORRELATION_ID_HEADER,
    REQUEST_ID_HEADER,
    current_correlation_id,
    current_request_id,
)
from services.gateway.authentication import Caller
from services.gateway.proxy.bodies import (
    BUFFERED_BODY_BYTES,
    ClientBody,
    ForwardedResponse,
    RequestBodyTimedOut,
    forwarded_headers,
    small,
)
from services.gateway.rate_limit import InFlightLimits
from services.gateway.routes import Route

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
        UPSTREAM_SECONDS.labels(upstream, route.template).observe(
            time.perf_counter() - started_at, exemplar()
        )
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
        if not small(response):
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
        forwarded.raw_headers = forwarded_headers(response)
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
