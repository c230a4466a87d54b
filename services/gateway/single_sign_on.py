"""Single sign-on through the company's OpenID Connect provider.

The console's "Sign in with ..." button starts the authorization code flow with PKCE
(RFC 7636, S256) at ``/auth/oidc/start``; the provider sends the browser back to
``/auth/oidc/callback``, where the gateway exchanges the code (with the verifier
only it holds), checks the ID token (signature from the provider's JWKS, issuer,
audience, expiry, nonce), reads the userinfo endpoint, and opens a console session
for the tenant and roles the claims name. The state, nonce and verifier wait in a
short-lived HttpOnly cookie, so a callback that the browser did not start is refused.

The provider is found by discovery (``/.well-known/openid-configuration``), so any
certified provider works: Keycloak, Microsoft Entra ID, Okta, Authing, Google.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import jwt

from libs.auth.roles import TENANT_ROLES
from services.gateway.settings import Settings

STATE_COOKIE = "crm_oidc"
STATE_COOKIE_PATH = "/auth/oidc"
STATE_SECONDS = 600
_DISCOVERY_SECONDS = 3600.0
_KNOWN_ROLES = frozenset(role.value for role in TENANT_ROLES)
# Asymmetric only: a provider's HS256 token would be signed with our client secret.
_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"]


class SignOnRefused(Exception):
    """The sign-on cannot go on; ``code`` is shown to the user (a key the console translates)."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Identity:
    tenant_id: str
    subject: str
    roles: frozenset[str]


@dataclass(frozen=True, slots=True)
class PendingSignOn:
    """What the browser keeps (in the state cookie) between start and callback."""

    state: str
    nonce: str
    verifier: str

    @classmethod
    def new(cls) -> PendingSignOn:
        return cls(secrets.token_urlsafe(24), secrets.token_urlsafe(24), secrets.token_urlsafe(48))

    @property
    def challenge(self) -> str:
        digest = hashlib.sha256(self.verifier.encode()).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def cookie(self) -> str:
        return ".".join((self.state, self.nonce, self.verifier))

    @classmethod
    def from_cookie(cls, value: str | None) -> PendingSignOn | None:
        parts = (value or "").split(".")
        return cls(*parts) if len(parts) == 3 and all(parts) else None


def identity_from(claims: Mapping[str, Any], settings: Settings) -> Identity:
    """The tenant, subject and roles the provider's claims grant (refused when none)."""
    tenant = settings.oidc_tenant or claims.get(settings.oidc_tenant_claim)
    if not isinstance(tenant, str) or not tenant.strip():
        raise SignOnRefused("no_tenant", f"the provider sent no {settings.oidc_tenant_claim!r}")
    given = claims.get(settings.oidc_roles_claim)
    if isinstance(given, str):
        given = given.replace(",", " ").split()
    roles = frozenset(r for r in given or () if isinstance(r, str)) & _KNOWN_ROLES
    roles = roles or frozenset(settings.oidc_default_roles) & _KNOWN_ROLES
    if not roles:
        raise SignOnRefused("no_roles", "the provider granted no role of this platform")
    email = claims.get("email")
    if isinstance(email, str) and email and claims.get("email_verified") is not False:
        subject = email.strip().lower()
    else:
        subject = f"oidc:{claims['sub']}"
    return Identity(tenant.strip(), subject, roles)


class OidcProvider:
    """The configured provider: its endpoints (by discovery, cached) and the code exchange."""

    def __init__(self, settings: Settings, client: httpx.AsyncClient | None = None) -> None:
        assert settings.oidc_issuer and settings.oidc_client_id
        self.settings = settings
        self.issuer = settings.oidc_issuer.rstrip("/")
        self.client_id = settings.oidc_client_id
        self.client = client or httpx.AsyncClient(timeout=10.0)
        self._metadata: dict[str, Any] | None = None
        self._fetched_at = 0.0

    @classmethod
    def configured(cls, settings: Settings) -> OidcProvider | None:
        if not settings.oidc_issuer or not settings.oidc_client_id:
            return None
        return cls(settings)

    async def close(self) -> None:
        await self.client.aclose()

    async def metadata(self) -> dict[str, Any]:
        if self._metadata is None or time.monotonic() - self._fetched_at > _DISCOVERY_SECONDS:
            url = f"{self.issuer}/.well-known/openid-configuration"
            self._metadata = await self._get_json(url)
            self._fetched_at = time.monotonic()
        return self._metadata

    async def authorization_url(self, pending: PendingSignOn, redirect_uri: str) -> str:
        endpoint = (await self.metadata())["authorization_endpoint"]
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self.client_id,
                "redirect_uri": redirect_uri,
                "scope": self.settings.oidc_scopes,
                "state": pending.state,
                "nonce": pending.nonce,
                "code_challenge": pending.challenge,
                "code_challenge_method": "S256",
            }
        )
        return f"{endpoint}?{query}"

    async def claims_for(
        self, code: str, pending: PendingSignOn, redirect_uri: str
    ) -> dict[str, Any]:
        """The user's claims: the checked ID token's, completed by the userinfo endpoint."""
        metadata = await self.metadata()
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": pending.verifier,
        }
        auth: httpx.Auth | httpx._client.UseClientDefault = httpx.USE_CLIENT_DEFAULT
        secret = self.settings.oidc_client_secret
        if secret is not None:
            # RFC 6749 2.3.1: both parts form-encoded before HTTP Basic.
            auth = httpx.BasicAuth(
                quote(self.client_id, safe=""), quote(secret.get_secret_value(), safe="")
            )
        else:
            form["client_id"] = self.client_id
        try:
            answer = await self.client.post(metadata["token_endpoint"], data=form, auth=auth)
        except httpx.HTTPError as failed:
            raise SignOnRefused("provider_unreachable", str(failed)) from None
        if answer.status_code != 200:
            raise SignOnRefused(
                "code_refused", f"token endpoint: {answer.status_code} {answer.text[:300]}"
            )
        tokens = answer.json()
        claims = await self._checked_id_token(tokens.get("id_token"), pending.nonce, metadata)
        userinfo_endpoint = metadata.get("userinfo_endpoint")
        access_token = tokens.get("access_token")
        if userinfo_endpoint and access_token:
            info = await self._get_json(
                userinfo_endpoint, headers={"Authorization": f"Bearer {access_token}"}
            )
            if info.get("sub") == claims["sub"]:  # OIDC Core 5.3.2: else it is not this user
                claims = {**info, **claims}
        return claims

    async def _checked_id_token(
        self, id_token: Any, nonce: str, metadata: Mapping[str, Any]
    ) -> dict[str, Any]:
        if not isinstance(id_token, str):
            raise SignOnRefused("no_id_token", "the provider answered without an ID token")
        try:
            header = jwt.get_unverified_header(id_token)
            keys = jwt.PyJWKSet.from_dict(await self._get_json(metadata["jwks_uri"])).keys
            key = next((k for k in keys if k.key_id == header.get("kid")), None)
            if key is None and len(keys) == 1:
                key = keys[0]
            if key is None:
                raise SignOnRefused("bad_id_token", "no provider key matches the ID token")
            claims: dict[str, Any] = jwt.decode(
                id_token,
                key.key,
                algorithms=_ALGORITHMS,
                audience=self.client_id,
                issuer=metadata.get("issuer", self.issuer),
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
                leeway=30,
            )
        except (jwt.PyJWTError, ValueError, KeyError) as invalid:
            raise SignOnRefused("bad_id_token", f"the ID token was refused: {invalid}") from None
        if not secrets.compare_digest(str(claims.get("nonce", "")), nonce):
            raise SignOnRefused("bad_id_token", "the ID token is not for this sign-in (nonce)")
        return claims

    async def _get_json(self, url: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
        try:
            answer = await self.client.get(url, headers=headers)
            answer.raise_for_status()
            found = answer.json()
        except (httpx.HTTPError, json.JSONDecodeError) as failed:
            raise SignOnRefused("provider_unreachable", f"{url}: {failed}") from None
        if not isinstance(found, dict):
            raise SignOnRefused("provider_unreachable", f"{url}: not a JSON object")
        return found
