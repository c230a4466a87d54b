"""The HTTP client that delivers webhooks: it connects only to addresses it checked.

A target's host name is resolved once per connection, every address it resolves to
is checked (``domain.addresses.refusal``), and the connection is opened to one of
those checked addresses: nothing resolves the name a second time, so a name that
answers a public address to the check and a loopback one to the connection (DNS
rebinding) reaches nothing. The URL keeps its name, so TLS sends it as SNI and
verifies the certificate against it, and the ``Host`` header carries it.

This is an httpcore network backend under httpx's own transport: the pool, TLS,
HTTP/1.1 and the error mapping stay httpx's (docs/decisions/0094).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable
from ipaddress import ip_address

import httpcore
import httpx

from services.alerts.notifications.domain.addresses import IPAddress, refusal

# How a host name becomes addresses: the system's resolver, or a test's answer.
Resolve = Callable[[str, int], Awaitable[list[IPAddress]]]


class TargetRefused(Exception):
    """The target resolves to an address a delivery may not reach; no retry mends it."""


async def resolve_host(host: str, port: int) -> list[IPAddress]:
    """Every address the system's resolver gives for ``host``, in its order."""
    found = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses: list[IPAddress] = []
    for *_, sockaddr in found:
        address = ip_address(str(sockaddr[0]))
        if address not in addresses:
            addresses.append(address)
    return addresses


class CheckedBackend(httpcore.AsyncNetworkBackend):
    """Connects to a host by the addresses it resolved and checked itself."""

    def __init__(self, resolve: Resolve, *, refuse_internal: bool) -> None:
        self.resolve = resolve
        # Off in development and tests (WEBHOOK_ALLOW_INSECURE_TARGETS): loopback
        # receivers; the connection still goes to the resolved address.
        self.refuse_internal = refuse_internal
        self._network = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        deadline = None if timeout is None else time.monotonic() + timeout
        addresses = await self._checked(host.strip("[]"), port, timeout)
        failed: Exception = httpcore.ConnectError(f"{host} resolves to no address")
        # One address after another, within the one connect timeout.
        for address in addresses:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                return await self._network.connect_tcp(
                    str(address), port, left, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as error:
                failed = error
        raise failed

    async def _checked(self, host: str, port: int, timeout: float | None) -> list[IPAddress]:
        try:
            addresses = await asyncio.wait_for(self.resolve(host, port), timeout)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"resolving {host} timed out") from None
        except OSError as failed:  # socket.gaierror: no such name, no answer
            raise httpcore.ConnectError(f"resolving {host}: {failed}") from None
        if self.refuse_internal:
            for address in addresses:
                why = refusal(address)
                if why is not None:
                    raise TargetRefused(f"{host} resolves to {address}, {why}")
        return addresses

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("webhooks are delivered over TCP only")

    async def sleep(self, seconds: float) -> None:
        await self._network.sleep(seconds)


def webhook_client(
    backend: CheckedBackend, timeout: float, verify: ssl.SSLContext | bool = True
) -> httpx.AsyncClient:
    """An httpx client whose every connection goes through ``backend``; no redirect is
    followed, and no proxy is taken from the environment (a proxy would resolve the
    name itself, unchecked). ``verify``: tests trust their own certificate."""
    ssl_context = httpx.create_ssl_context(verify=verify)
    transport = httpx.AsyncHTTPTransport(verify=ssl_context, trust_env=False)
    limits = httpx.Limits()  # httpx's defaults, as the transport had them
    # httpx 0.28 takes no network backend (encode/httpx#3749 would): its pool is
    # replaced by the same pool over ours. Pinned in pyproject.toml; checked here.
    if not isinstance(getattr(transport, "_pool", None), httpcore.AsyncConnectionPool):
        raise RuntimeError("httpx's transport no longer keeps an httpcore pool in _pool")
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=ssl_context,
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        network_backend=backend,
    )
    return httpx.AsyncClient(
        transport=transport, timeout=timeout, follow_redirects=False, trust_env=False
    )
