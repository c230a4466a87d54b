"""require(permission): 401 for anyone we cannot identify, 403 for a role the
matrix does not allow, the Principal otherwise."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import Depends, FastAPI

from libs.auth import (
    AuthSettings,
    Principal,
    TokenVerifier,
    UnknownPermission,
    bind_token_verifier,
    issue_token,
    require,
)
from libs.auth.tests.test_tokens import StaticKeySet, claims, signed

SETTINGS = AuthSettings()


def service_app(verifier: TokenVerifier | None = None) -> FastAPI:
    app = FastAPI()
    bind_token_verifier(app, verifier or TokenVerifier(SETTINGS))

    @app.post("/customers/{customer_id}/erase")
    async def erase_customer(
        customer_id: str,
        principal: Annotated[Principal, Depends(require("customers:erase"))],
    ) -> dict[str, str]:
        return {"erased": customer_id, "by": principal.subject, "tenant": principal.tenant_id}

    return app


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=service_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://contacts") as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_a_request_without_a_token_is_401_with_a_bearer_challenge(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/customers/c-1/erase")

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.json() == {"detail": "authentication required"}


async def test_another_authorization_scheme_is_401(client: httpx.AsyncClient) -> None:
    response = await client.post("/customers/c-1/erase", headers={"Authorization": "Basic YTpi"})

    assert response.status_code == 401


# Tokens are made when the test runs, not when it is collected: a token signed at
# collection may have expired by the time a busy parallel run reaches it.
@pytest.mark.parametrize(
    ("make_token", "reason"),
    [
        (lambda: signed(claims(roles=["admin"]), secret="z" * 40), "bad signature"),
        (
            lambda: issue_token(
                SETTINGS, "u", "acme", ["admin"], now=datetime.now(UTC) - timedelta(days=1)
            ),
            "token expired",
        ),
        (lambda: signed(claims(roles=["admin"], aud="other-api")), "wrong audience"),
        (lambda: signed(claims(roles=["admin"], iss="other-idp")), "wrong issuer"),
        (lambda: signed(claims(roles=["admin"], tenant=None)), "missing claim: tenant"),
        (lambda: "garbage", "malformed token"),
    ],
    ids=["bad-signature", "expired", "wrong-audience", "wrong-issuer", "no-tenant", "garbage"],
)
async def test_an_untrustworthy_token_is_401_naming_the_reason(
    client: httpx.AsyncClient, make_token: Callable[[], str], reason: str
) -> None:
    response = await client.post("/customers/c-1/erase", headers=bearer(make_token()))

    assert response.status_code == 401
    assert response.json() == {"detail": f"invalid token: {reason}"}
    challenge = response.headers["WWW-Authenticate"]
    assert challenge == f'Bearer error="invalid_token", error_description="{reason}"'


@pytest.mark.parametrize("role", ["manager", "sales", "support", "marketing", "viewer"])
async def test_a_role_the_matrix_does_not_allow_is_403(
    client: httpx.AsyncClient, role: str
) -> None:
    token = issue_token(SETTINGS, "user-7", "acme", [role])

    response = await client.post("/customers/c-1/erase", headers=bearer(token))

    assert response.status_code == 403
    assert response.json() == {"detail": "customers:erase needs one of the roles: admin"}


async def test_an_allowed_role_gets_through_with_its_principal(client: httpx.AsyncClient) -> None:
    token = issue_token(SETTINGS, "user-7", "acme", ["viewer", "admin"])

    response = await client.post("/customers/c-1/erase", headers=bearer(token))

    assert response.status_code == 200
    assert response.json() == {"erased": "c-1", "by": "user-7", "tenant": "acme"}


async def test_an_unreachable_key_set_is_503_not_401() -> None:
    settings = AuthSettings(jwks_url="https://idp.invalid/.well-known/jwks.json")
    app = service_app(TokenVerifier(settings, jwks_client=StaticKeySet(None)))
    identity_provider_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rs_token = jwt.encode(claims(), identity_provider_key, algorithm="RS256", headers={"kid": "k1"})
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://contacts") as client:
        response = await client.post("/customers/c-1/erase", headers=bearer(rs_token))

    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"


def test_a_misspelt_permission_fails_when_the_router_is_declared() -> None:
    with pytest.raises(UnknownPermission):
        require("customer:erase")
