"""Single sign-on against a real, certified OpenID Connect provider (npm ``oidc-provider``,
run locally): the authorization code flow with PKCE, from the console's button to a
session, with the tenant and roles taken from the provider's claims."""

from __future__ import annotations

import html
import json
import re
import socket
import subprocess
from collections.abc import AsyncIterator, Iterator
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pytest
import pytest_asyncio
from pydantic import SecretStr

from services.gateway.settings import Settings
from services.gateway.single_sign_on import SignOnRefused, identity_from
from services.gateway.tests.support import open_gateway
from testing.tools import oidc_provider_script

GATEWAY = "http://gateway.test"
CLIENT_SECRET = "a-client-secret-of-the-console-0123456789"
CLIENT = {
    "client_id": "crm-console",
    "client_secret": CLIENT_SECRET,
    "redirect_uris": [f"{GATEWAY}/auth/oidc/callback"],
}
ACCOUNTS = {
    "zhang.wei": {
        "email": "Zhang.Wei@acme.cn",
        "email_verified": True,
        "name": "张伟",
        "tenant": "acme",
        "roles": ["sales", "superuser"],
    },
    "intern": {"email": "intern@acme.cn", "email_verified": True, "tenant": "acme"},
}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    script = oidc_provider_script()
    config = {"port": _free_port(), "client": CLIENT, "accounts": ACCOUNTS}
    # Its warnings (development keys, in-memory storage) go to a file, read on failure.
    errors = tmp_path_factory.mktemp("oidc") / "stderr.txt"
    with errors.open("w") as stderr:
        process = subprocess.Popen(
            ["node", str(script), json.dumps(config)],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # the first line once it listens; "" if it died
        if not line.startswith("listening"):
            pytest.fail(f"oidc-provider did not start: {line}{errors.read_text()[-2000:]}")
        yield line.split()[1]
    finally:
        process.terminate()
        process.wait(timeout=10)
        script.unlink(missing_ok=True)


@pytest_asyncio.fixture
async def gateway(settings: Settings, provider: str) -> AsyncIterator[httpx.AsyncClient]:
    with_sso = settings.model_copy(
        update={
            "oidc_issuer": provider,
            "oidc_client_id": CLIENT["client_id"],
            "oidc_client_secret": SecretStr(CLIENT_SECRET),
            "oidc_scopes": "openid email profile crm",
            "oidc_display_name": "ACME ID",
            "public_url": GATEWAY,
        }
    )
    async with open_gateway(with_sso) as client:
        yield client


async def _sign_on(gateway: httpx.AsyncClient, login: str) -> httpx.Response:
    """A browser's way through: the button, the provider's sign-in and consent pages,
    back to the gateway's callback; the callback's answer."""
    start = await gateway.get("/auth/oidc/start")
    assert start.status_code == 303, start.text
    url = start.headers["location"]
    query = parse_qs(urlsplit(url).query)
    assert query["code_challenge_method"] == ["S256"] and query["code_challenge"][0]
    async with httpx.AsyncClient(timeout=10) as browser:
        for _ in range(20):
            if url.startswith(GATEWAY):
                return await gateway.get(url.removeprefix(GATEWAY))
            page = await browser.get(url)
            if page.is_redirect:
                url = urljoin(url, page.headers["location"])
                continue
            assert page.status_code == 200, page.text
            action = html.unescape(re.search(r'action="([^"]+)"', page.text).group(1))  # type: ignore[union-attr]
            prompt = re.search(r'name="prompt" value="(\w+)"', page.text).group(1)  # type: ignore[union-attr]
            form = {"prompt": prompt}
            if prompt == "login":
                form |= {"login": login, "password": "anything"}
            sent = await browser.post(urljoin(url, action), data=form)
            assert sent.is_redirect, sent.text
            url = urljoin(url, sent.headers["location"])
    raise AssertionError("the provider never sent the browser back")


async def test_the_sign_in_page_offers_the_provider(gateway: httpx.AsyncClient) -> None:
    methods = (await gateway.get("/auth/methods")).json()
    assert methods == {"password": True, "single_sign_on": "ACME ID"}


async def test_signing_on_opens_a_session_in_the_tenant_and_roles_the_claims_name(
    gateway: httpx.AsyncClient,
) -> None:
    back = await _sign_on(gateway, "zhang.wei")

    assert back.status_code == 303 and back.headers["location"] == "/console/#/"
    assert "crm_session=" in back.headers["set-cookie"]
    session = await gateway.post("/auth/refresh")
    assert session.status_code == 200, session.text
    # Unknown roles ("superuser") grant nothing; the address is lower-cased.
    assert session.json()["subject"] == "zhang.wei@acme.cn"
    assert session.json()["tenant"] == "acme" and session.json()["roles"] == ["sales"]
    token = session.json()["access_token"]
    me = await gateway.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me.json()["subject"] == "zhang.wei@acme.cn" and me.json()["roles"] == ["sales"]


async def test_an_account_the_provider_gives_no_role_is_sent_back_refused(
    gateway: httpx.AsyncClient,
) -> None:
    back = await _sign_on(gateway, "intern")

    assert back.headers["location"] == "/console/#/signin?error=no_roles"
    assert (await gateway.post("/auth/refresh")).status_code == 401


async def test_a_callback_this_browser_did_not_start_is_refused(
    gateway: httpx.AsyncClient,
) -> None:
    forged = await gateway.get("/auth/oidc/callback?code=stolen&state=guessed")

    assert forged.headers["location"] == "/console/#/signin?error=state"
    assert (await gateway.post("/auth/refresh")).status_code == 401


def test_claims_map_to_a_tenant_and_known_roles(settings: Settings) -> None:
    fixed = settings.model_copy(update={"oidc_tenant": "acme", "oidc_default_roles": ("viewer",)})
    identity = identity_from({"sub": "u1", "roles": "sales, root"}, fixed)
    assert identity.tenant_id == "acme" and identity.subject == "oidc:u1"
    assert identity.roles == frozenset({"sales"})
    assert identity_from({"sub": "u1"}, fixed).roles == frozenset({"viewer"})
    with pytest.raises(SignOnRefused) as refused:
        identity_from({"sub": "u1", "roles": ["sales"]}, settings)
    assert refused.value.code == "no_tenant"
    unverified = identity_from(
        {"sub": "u2", "email": "x@acme.cn", "email_verified": False, "tenant": "t"}, fixed
    )
    assert unverified.subject == "oidc:u2"
