"""An erased customer leaves nothing readable at rest in any service: not in a row of
any table, and on SQLite not in the bytes of any database file or write-ahead log.

The person is erased after being everywhere a customer can be: a profile, a call's
summary, an order refunded with a reason, a ticket whose subject and reply name them,
and webhook deliveries (delivered, and pending at a receiver that keeps failing) of
all of those events."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from libs.auth import issue_token
from libs.platform.cli import service_database_url
from libs.platform.settings import ServiceSettings
from services.bootstrap import SERVICES
from tests.conftest import (
    CLIENT_TIMEOUT,
    RunningPlatform,
    body_until,
    eventually,
    wait_until_caught_up,
)

TENANT = "erasure-everywhere"
NAME = "Zorblax Quentin"
EMAIL = "zorblax.quentin@example.com"
PHONE = "+8613987654321"
# ASCII on purpose: the same bytes in every column type, JSON and the files' encoding.
TRACES = ("zorblax", EMAIL, "13987654321")


class Receiver:
    """A webhook receiver on 127.0.0.1 answering ``status`` to every delivery."""

    def __init__(self, status: int) -> None:
        self.bodies: list[bytes] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                receiver.bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def receivers() -> Iterator[tuple[Receiver, Receiver]]:
    working, failing = Receiver(204), Receiver(503)
    yield working, failing
    working.server.shutdown()
    failing.server.shutdown()


@pytest.fixture(scope="module")
def client(platform: RunningPlatform) -> httpx.Client:
    token = issue_token(ServiceSettings().auth(), "admin@erasure", TENANT, ["admin"])
    return httpx.Client(
        base_url=platform.gateway,
        headers={"Authorization": f"Bearer {token}"},
        timeout=CLIENT_TIMEOUT,
    )


def traces_in_files(workdir: Path) -> dict[str, list[str]]:
    """Each SQLite database file, log and shared-memory file holding a trace (bytes)."""
    found: dict[str, list[str]] = {}
    for file in sorted((workdir / "var").glob("*.db*")):
        content = file.read_bytes().lower()
        hits = [trace for trace in TRACES if trace.encode() in content]
        if hits:
            found[file.name] = hits
    return found


async def _traces_in_database(url: str) -> dict[str, list[str]]:
    """Each table of one PostgreSQL database with a row holding a trace in any column
    (the row as text: bytea shows as hex, so the hex of each trace is looked for too)."""
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        tables = await conn.fetch(
            "SELECT schemaname, tablename FROM pg_tables"
            " WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"
        )
        found: dict[str, list[str]] = {}
        for schema, table in tables:
            name = f'"{schema}"."{table}"'
            hits = [
                trace
                for trace in TRACES
                if await conn.fetchval(
                    f"SELECT EXISTS (SELECT 1 FROM {name} t WHERE strpos(lower(t::text), $1) > 0"
                    f" OR strpos(lower(t::text), $2) > 0)",
                    trace,
                    trace.encode().hex(),
                )
            ]
            if hits:
                found[table] = hits
        return found
    finally:
        await conn.close()


def traces_in_tables(database_url: str) -> dict[str, dict[str, list[str]]]:
    found = {}
    for service in SERVICES:
        url = service_database_url(database_url, service.name)
        in_service = asyncio.run(_traces_in_database(url))
        if in_service:
            found[service.name] = in_service
    return found


def traces_at_rest(platform: RunningPlatform, database_url: str) -> dict[str, Any]:
    if not database_url:
        return traces_in_files(platform.logs)
    return traces_in_tables(database_url)


def created(response: httpx.Response) -> str:
    assert response.status_code == 201, response.text
    found: str = response.json()["id"]
    return found


def subscribe(client: httpx.Client, url: str) -> str:
    return created(client.post("/api/v1/webhooks", json={"url": url, "event_types": ["*"]}))


def test_an_erased_customer_is_found_in_no_database_of_any_service(
    client: httpx.Client,
    platform: RunningPlatform,
    platform_database: str,
    receivers: tuple[Receiver, Receiver],
) -> None:
    working, failing = receivers
    delivered_to = subscribe(client, working.url)
    subscribe(client, failing.url)

    customer = created(
        client.post(
            "/api/v1/customers",
            json={"kind": "person", "name": NAME, "email": EMAIL, "phone": PHONE},
        )
    )
    logged = client.post(
        f"/api/v1/customers/{customer}/interactions",
        json={"channel": "phone", "direction": "inbound", "summary": f"{NAME} called, upset"},
    )
    assert logged.status_code == 201, logged.text
    order = created(
        client.post(
            "/api/v1/orders", json={"customer_id": customer, "currency": "EUR", "total": 9900}
        )
    )
    refunded = client.post(
        f"/api/v1/orders/{order}/refunds",
        json={"amount": 1000, "reason": f"goodwill for {NAME}"},
    )
    assert refunded.status_code == 201, refunded.text
    ticket = created(
        client.post(
            "/api/v1/tickets",
            json={
                "customer_id": customer,
                "subject": f"complaint from {NAME}",
                "description": f"{NAME} says the parcel never came",
                "category": "complaint",
            },
        )
    )
    replied = client.post(
        f"/api/v1/tickets/{ticket}/replies", json={"body": f"Dear {NAME}, we are sorry"}
    )
    assert replied.status_code == 200, replied.text

    gateway = str(client.base_url).rstrip("/")
    eventually(
        gateway, "the reply reaching the webhook", lambda: _received(working, "ticket_replied")
    )
    wait_until_caught_up(gateway)
    before = traces_at_rest(platform, platform_database)
    # The test can fail: the person really is at rest, in the services that copy them.
    assert {"contacts", "tickets", "alerts"} <= {name.split(".")[0] for name in before}, before

    erased = client.delete(f"/api/v1/customers/{customer}/personal-data")
    assert erased.status_code == 200, erased.text
    eventually(
        gateway,
        "the erasure reaching the webhook",
        lambda: _received(working, "personal_data_erased"),
    )
    wait_until_caught_up(gateway)

    assert traces_at_rest(platform, platform_database) == {}
    listed = client.get(f"/api/v1/customers/{customer}/tickets")
    assert listed.status_code == 200, listed.text
    assert "zorblax" not in listed.text.lower()
    log = body_until(client, f"/api/v1/webhooks/{delivered_to}/deliveries", lambda b: b["items"])
    assert "zorblax" not in str(log).lower()


def _received(receiver: Receiver, event: str) -> bool:
    return any(f".{event}.v1".encode() in body for body in receiver.bodies)
