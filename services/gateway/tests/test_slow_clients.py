"""Slow clients through a real gateway over real sockets: one that sends half a body
and stalls costs itself, never the other callers.

The gateway is served by uvicorn, as in production, in front of the stand-in
services; the stalled clients are raw sockets that send the headers and the first
bytes of a body, then nothing.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import httpx

from services.bootstrap import gateway_routing
from services.gateway.app import create_app
from services.gateway.open_resources import GatewayRuntime
from services.gateway.tests.support import bearer, gateway_settings
from services.gateway.tests.upstreams import UpstreamServer

Socket = tuple[asyncio.StreamReader, asyncio.StreamWriter]


@contextmanager
def served_gateway(
    pg_url: str, contacts: UpstreamServer, customer360: UpstreamServer, **overrides: Any
) -> Iterator[UpstreamServer]:
    settings = gateway_settings(pg_url, contacts.url, customer360.url, **overrides)
    server = UpstreamServer(create_app(settings, gateway_routing()), lifespan="on").start()
    try:
        yield server
    finally:
        server.stop()


def runtime_of(server: UpstreamServer) -> GatewayRuntime:
    runtime: GatewayRuntime = server.app.state.gateway
    return runtime


async def eventually(condition: Callable[[], bool], *, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def send_half_a_body(
    server: UpstreamServer,
    headers: dict[str, str],
    *,
    declared: int = 100,
    sent: int = 10,
    path: str = "/api/v1/customers",
) -> Socket:
    """A POST that declares ``declared`` bytes of body, sends ``sent``, then nothing."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    head = [
        f"POST {path} HTTP/1.1",
        f"Host: 127.0.0.1:{server.port}",
        "Content-Type: application/json",
        f"Content-Length: {declared}",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + b"{" + b" " * (sent - 1))
    await writer.drain()
    return reader, writer


@asynccontextmanager
async def stalled(
    server: UpstreamServer, count: int, headers: dict[str, str], **body: Any
) -> AsyncIterator[list[Socket]]:
    """``count`` half-sent bodies held open by the gateway until the block ends."""
    before = server.requests_in_progress
    sockets = [await send_half_a_body(server, headers, **body) for _ in range(count)]
    try:
        # Every one of them is being handled (its headers read) before the block runs.
        await eventually(lambda: server.requests_in_progress >= before + count)
        yield sockets
    finally:
        for _, writer in sockets:
            writer.close()


async def answer_of(reader: asyncio.StreamReader, *, within: float) -> tuple[int, dict[str, Any]]:
    """The status and JSON body the gateway sent before closing the connection."""
    async with asyncio.timeout(within):
        raw = await reader.read()  # to EOF: the gateway must close the connection
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body)


async def test_stalled_bodies_of_one_tenant_leave_the_pool_to_every_other_caller(
    pg_url: str, contacts_service: UpstreamServer, customer360_service: UpstreamServer
) -> None:
    # Five times more stalled bodies than the gateway has connections to contacts,
    # and no limit on requests in flight: only reading bodies first protects the pool.
    with served_gateway(
        pg_url,
        contacts_service,
        customer360_service,
        upstream_max_connections=8,
        request_body_timeout_seconds=30,
        caller_max_requests_in_flight=0,
        tenant_max_requests_in_flight=0,
    ) as gateway:
        async with (
            stalled(gateway, 40, bearer("slowpoke", subject="uploader")),
            httpx.AsyncClient(base_url=gateway.url, timeout=10) as client,
        ):
            started = time.monotonic()
            answers = await asyncio.gather(
                *(client.get("/api/v1/customers", headers=bearer("acme")) for _ in range(10)),
                client.post("/api/v1/customers", json={"name": "王芳"}, headers=bearer("acme")),
                client.get("/api/v1/customers", headers=bearer("slowpoke", subject="colleague")),
            )
            elapsed = time.monotonic() - started

    # A request queued for a connection held by a stalled body would be refused once the
    # pool timeout (1 s) passed: every answer a success means none was queued.
    assert [answer.status_code for answer in answers] == [200] * 10 + [201, 200]
    # And none waited for a body the stalled callers hold for 30 s (a busy machine may
    # take a few seconds for a dozen requests; the margin is the stall, not the pool).
    assert elapsed < 10.0


async def test_a_stalled_body_is_answered_408_and_the_connection_closed_within_the_bound(
    pg_url: str, contacts_service: UpstreamServer, customer360_service: UpstreamServer
) -> None:
    with served_gateway(
        pg_url, contacts_service, customer360_service, request_body_timeout_seconds=1
    ) as gateway:
        started = time.monotonic()
        small, small_writer = await send_half_a_body(gateway, bearer())
        # A big body goes up as a stream: it stalls after a connection was taken.
        big, big_writer = await send_half_a_body(
            gateway, bearer(), declared=5_000_000, sent=200_000
        )

        small_status, small_body = await answer_of(small, within=3)
        big_status, big_body = await answer_of(big, within=3)
        elapsed = time.monotonic() - started
        small_writer.close()
        big_writer.close()

        assert (small_status, big_status) == (408, 408)
        assert "did not arrive in time" in small_body["detail"]
        # The same problem, each with its own request id.
        assert big_body | {"request_id": ""} == small_body | {"request_id": ""}
        assert 1.0 <= elapsed < 3.0
        # Whatever they held is free again.
        assert runtime_of(gateway).proxy.in_flight.in_flight("acme") == 0


async def test_a_caller_and_a_tenant_hold_at_most_their_share_of_requests_in_flight(
    pg_url: str, contacts_service: UpstreamServer, customer360_service: UpstreamServer
) -> None:
    with served_gateway(
        pg_url,
        contacts_service,
        customer360_service,
        request_body_timeout_seconds=30,
        caller_max_requests_in_flight=3,
        tenant_max_requests_in_flight=5,
    ) as gateway:
        in_flight = runtime_of(gateway).proxy.in_flight
        async with httpx.AsyncClient(base_url=gateway.url, timeout=5) as client:

            async def search(tenant: str, subject: str) -> httpx.Response:
                return await client.get(
                    "/api/v1/customers", headers=bearer(tenant, subject=subject)
                )

            async with stalled(gateway, 3, bearer("slowpoke", subject="uploader")):
                await eventually(lambda: in_flight.in_flight("slowpoke", "uploader") == 3)
                own = await search("slowpoke", "uploader")
                colleague = await search("slowpoke", "colleague")
                # A finished search gives its slot back, and its server task ends, just
                # after its answer is sent: only the three stalled bodies remain.
                await eventually(lambda: in_flight.in_flight("slowpoke") == 3)
                await eventually(lambda: gateway.requests_in_progress == 3)

                async with stalled(gateway, 2, bearer("slowpoke", subject="colleague")):
                    await eventually(lambda: in_flight.in_flight("slowpoke") == 5)
                    same_tenant = await search("slowpoke", "third")
                    other_tenant = await search("acme", "user-1")

            # Closed by their clients: the slots are the caller's again.
            await eventually(lambda: in_flight.in_flight("slowpoke") == 0)
            after = await search("slowpoke", "uploader")

    assert own.status_code == 429
    assert own.json()["limit"] == "caller_in_flight"
    assert own.headers["Retry-After"] == "1"
    assert colleague.status_code == 200
    assert same_tenant.status_code == 429
    assert same_tenant.json()["limit"] == "tenant_in_flight"
    assert other_tenant.status_code == 200
    assert after.status_code == 200
