"""The webhook client connects only to addresses it checked: a name is resolved once,
every address it resolves to is judged, and the connection goes to a judged address
while TLS and the Host header keep the name. Real sockets on 127.0.0.1, with the
resolver answered by the test (no DNS)."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from ipaddress import ip_address
from pathlib import Path

import httpx
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from services.alerts.notifications.domain.addresses import IPAddress
from services.alerts.notifications.handlers.webhook_client import (
    CheckedBackend,
    TargetRefused,
    webhook_client,
)


@dataclass
class Listener:
    """A TCP port on 127.0.0.1 that counts the connections it gets and answers none."""

    port: int = 0
    connections: int = 0


@pytest.fixture
async def listener() -> AsyncIterator[Listener]:
    found = Listener()

    async def accept(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        found.connections += 1
        writer.close()

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    found.port = server.sockets[0].getsockname()[1]
    yield found
    server.close()
    await server.wait_closed()


@dataclass
class Answers:
    """The resolver as the test answers it, and what it was asked."""

    names: dict[str, list[str]]
    asked: list[tuple[str, int]] = field(default_factory=list)

    async def __call__(self, host: str, port: int) -> list[IPAddress]:
        self.asked.append((host, port))
        return [ip_address(a) for a in self.names[host]]


@dataclass
class Seen:
    hosts: list[str] = field(default_factory=list)
    server_names: list[str | None] = field(default_factory=list)


def certificate(tmp_path: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate for ``name`` and its key, as files."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


async def serve(
    seen: Seen, tls: ssl.SSLContext | None = None, status: int = 204, location: str = ""
) -> tuple[web.AppRunner, int]:
    async def hook(request: web.Request) -> web.Response:
        seen.hosts.append(request.headers["Host"])
        return web.Response(status=status, headers={"Location": location} if location else {})

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


def client(
    resolve: Answers, *, refuse_internal: bool, verify: ssl.SSLContext | bool = True
) -> httpx.AsyncClient:
    backend = CheckedBackend(resolve, refuse_internal=refuse_internal)
    return webhook_client(backend, 5.0, verify)


async def test_a_name_resolving_to_loopback_is_refused_before_any_connection(
    listener: Listener,
) -> None:
    answers = Answers({"hooks.example": ["127.0.0.1"]})
    async with client(answers, refuse_internal=True) as webhooks:
        with pytest.raises(TargetRefused) as refused:
            await webhooks.post(f"https://hooks.example:{listener.port}/hook", content=b"{}")
    assert str(refused.value) == "hooks.example resolves to 127.0.0.1, a loopback address"
    assert listener.connections == 0


async def test_one_internal_address_among_public_ones_refuses_the_name(
    listener: Listener,
) -> None:
    answers = Answers({"hooks.example": ["93.184.215.14", "::ffff:127.0.0.1"]})
    async with client(answers, refuse_internal=True) as webhooks:
        with pytest.raises(TargetRefused) as refused:
            await webhooks.post(f"http://hooks.example:{listener.port}/hook", content=b"{}")
    assert "(127.0.0.1 inside an IPv6 address)" in str(refused.value)
    assert listener.connections == 0


async def test_the_connection_goes_to_the_checked_address_and_tls_keeps_the_name(
    tmp_path: Path,
) -> None:
    cert_file, key_file = certificate(tmp_path, "hooks.example")
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert_file, key_file)
    seen = Seen()
    tls.sni_callback = lambda _, name, __: seen.server_names.append(name)
    runner, port = await serve(seen, tls)
    # "hooks.example" has no address in DNS: only the checked answer can be reached.
    answers = Answers({"hooks.example": ["127.0.0.1"]})
    trusted = ssl.create_default_context(cafile=str(cert_file))
    try:
        async with client(answers, refuse_internal=False, verify=trusted) as webhooks:
            sent = await webhooks.post(f"https://hooks.example:{port}/hook", content=b"{}")
    finally:
        await runner.cleanup()
    assert sent.status_code == 204
    assert answers.asked == [("hooks.example", port)]  # resolved once, by the check
    assert seen.server_names == ["hooks.example"]
    assert seen.hosts == [f"hooks.example:{port}"]


async def test_a_certificate_for_another_name_is_refused_at_the_checked_address(
    tmp_path: Path,
) -> None:
    cert_file, key_file = certificate(tmp_path, "hooks.example")
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert_file, key_file)
    seen = Seen()
    runner, port = await serve(seen, tls)
    answers = Answers({"other.example": ["127.0.0.1"]})
    trusted = ssl.create_default_context(cafile=str(cert_file))
    try:
        async with client(answers, refuse_internal=False, verify=trusted) as webhooks:
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await webhooks.post(f"https://other.example:{port}/hook", content=b"{}")
    finally:
        await runner.cleanup()
    assert seen.hosts == []


async def test_a_redirect_is_answered_but_never_followed(listener: Listener) -> None:
    seen = Seen()
    elsewhere = f"http://127.0.0.1:{listener.port}/latest/meta-data/"
    runner, port = await serve(seen, status=307, location=elsewhere)
    answers = Answers({"hooks.example": ["127.0.0.1"]})
    try:
        async with client(answers, refuse_internal=False) as webhooks:
            sent = await webhooks.post(f"http://hooks.example:{port}/hook", content=b"{}")
    finally:
        await runner.cleanup()
    assert sent.status_code == 307
    assert listener.connections == 0
