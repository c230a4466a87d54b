"""The upstream client: httpx's API over aiohttp's connection pool, one for every
forwarded request, with aiohttp's errors named as httpx names them."""

from __future__ import annotations

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

from libs.platform.tracing import trace_client
from services.gateway.settings import Settings


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
    # Traced (when traces are on) here: the instrumentation knows httpx's own transports only.
    return trace_client(httpx.AsyncClient(timeout=timeout, transport=transport, trust_env=False))
