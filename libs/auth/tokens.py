"""Bearer tokens: who is calling, for which tenant, in which roles.

Locally (``make run``, tests) tokens are HS256, signed with a shared secret that
``issue_token`` also uses. In production the identity provider signs with RS256
and the services verify with its public key or its JWKS endpoint; configuring
either turns the shared secret off unless HS256 is asked for explicitly, so the
well-known development secret can never mint production tokens.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import jwt
from jwt import PyJWKClient
from jwt.types import Options
from pydantic import BaseModel, ConfigDict, SecretStr, model_validator

from libs.auth.roles import is_allowed

DEVELOPMENT_SECRET = "crm-platform-development-secret-do-not-use-in-production"

# HMAC keys shorter than the hash are guessable offline from one captured token.
MINIMUM_SECRET_BYTES = 32

_SHARED_SECRET_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})
# Verified tokens are remembered so that a client's every request does not pay the
# signature check again (a quarter of a millisecond of CPU each, the largest part of
# a cached read). An entry is trusted until the token's own expiry (with the leeway
# jwt.decode allows) and never longer than REMEMBER_SECONDS, so a signing key taken
# out of the JWKS stops being honoured within that time.
REMEMBER_SECONDS = 60.0
REMEMBERED_TOKENS = 10_000

_PUBLIC_KEY_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller. Every read and write is scoped to ``tenant_id``."""

    subject: str
    tenant_id: str
    roles: frozenset[str]
    via: Literal["jwt", "api_key"] = "jwt"

    def may(self, permission: str) -> bool:
        return is_allowed(self.roles, permission)


class InvalidToken(Exception):
    """The bearer token cannot be trusted; ``reason`` is safe to show the caller."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SigningKeysUnavailable(Exception):
    """The JWKS endpoint could not be reached: our outage, not the caller's mistake."""


class AuthSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    issuer: str = "crm-platform"
    audience: str = "crm-api"
    # None: HS256 when only the shared secret is configured, RS256 once a public
    # key or JWKS URL is, so switching to production needs no second setting.
    algorithms: tuple[str, ...] | None = None
    secret: SecretStr | None = SecretStr(DEVELOPMENT_SECRET)
    public_key_pem: str | None = None
    jwks_url: str | None = None
    # Clock skew tolerated between the identity provider and this service.
    leeway_seconds: float = 30.0
    jwks_cache_seconds: float = 300.0
    jwks_timeout_seconds: float = 5.0

    @property
    def accepted_algorithms(self) -> tuple[str, ...]:
        if self.algorithms is not None:
            return self.algorithms
        if self.public_key_pem or self.jwks_url:
            return ("RS256",)
        return ("HS256",)

    @property
    def uses_development_secret(self) -> bool:
        return (
            self.secret is not None
            and self.secret.get_secret_value() == DEVELOPMENT_SECRET
            and any(alg in _SHARED_SECRET_ALGORITHMS for alg in self.accepted_algorithms)
        )

    @model_validator(mode="after")
    def _keys_match_algorithms(self) -> AuthSettings:
        # Misconfiguration fails at start-up, not on the first request.
        algorithms = self.accepted_algorithms
        if not algorithms:
            raise ValueError("at least one JWT algorithm must be accepted")
        unknown = set(algorithms) - _SHARED_SECRET_ALGORITHMS - _PUBLIC_KEY_ALGORITHMS
        if unknown:
            raise ValueError(f"unsupported JWT algorithms: {sorted(unknown)}")
        if any(alg in _SHARED_SECRET_ALGORITHMS for alg in algorithms):
            if self.secret is None:
                raise ValueError("a shared-secret algorithm is accepted but no secret is set")
            if len(self.secret.get_secret_value().encode()) < MINIMUM_SECRET_BYTES:
                raise ValueError(f"the JWT secret must be at least {MINIMUM_SECRET_BYTES} bytes")
        if any(alg in _PUBLIC_KEY_ALGORITHMS for alg in algorithms) and not (
            self.public_key_pem or self.jwks_url
        ):
            raise ValueError("a public-key algorithm is accepted but no public key or JWKS URL")
        return self


class TokenVerifier:
    """Turns a bearer token into a Principal, or says precisely why it cannot."""

    def __init__(
        self,
        settings: AuthSettings,
        *,
        jwks_client: PyJWKClient | None = None,
        clock: Callable[[], float] = time.time,
        remember: int = REMEMBERED_TOKENS,
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._remember_at_most = remember
        # token -> (the principal, trusted until this clock time); oldest first.
        self._remembered: dict[str, tuple[Principal, float]] = {}
        # verify() runs in worker threads when it fetches keys.
        self._remembering = threading.Lock()
        self._algorithms = frozenset(settings.accepted_algorithms)
        self._jwks = jwks_client
        if self._jwks is None and settings.jwks_url:
            self._jwks = PyJWKClient(
                settings.jwks_url,
                cache_keys=True,
                lifespan=settings.jwks_cache_seconds,
                timeout=settings.jwks_timeout_seconds,
            )

    @property
    def fetches_keys(self) -> bool:
        """True when ``verify`` may block on the network (call it off the event loop)."""
        return self._jwks is not None

    def remembered(self, token: str) -> Principal | None:
        """The principal of a token verified before and still trusted, else None."""
        entry = self._remembered.get(token)
        if entry is None:
            return None
        principal, trusted_until = entry
        if self._clock() >= trusted_until:
            return None  # verify() again: it says why (expired) and renews the entry
        return principal

    def verify(self, token: str) -> Principal:
        principal = self.remembered(token)
        if principal is not None:
            return principal
        algorithm = self._algorithm_of(token)
        key = self._key_for(algorithm, token)
        options: Options = {
            "require": ["exp", "iss", "aud", "sub"],
            "enforce_minimum_key_length": True,
        }
        try:
            claims = jwt.decode(
                token,
                key,
                # Only the algorithm the key was chosen for: a public key must never
                # be accepted as an HMAC secret (algorithm confusion).
                algorithms=[algorithm],
                audience=self.settings.audience,
                issuer=self.settings.issuer,
                leeway=self.settings.leeway_seconds,
                options=options,
            )
        except jwt.ExpiredSignatureError:
            raise InvalidToken("token expired") from None
        except jwt.ImmatureSignatureError:
            raise InvalidToken("token not yet valid") from None
        except jwt.InvalidAudienceError:
            raise InvalidToken("wrong audience") from None
        except jwt.InvalidIssuerError:
            raise InvalidToken("wrong issuer") from None
        except jwt.InvalidSignatureError:
            raise InvalidToken("bad signature") from None
        except jwt.MissingRequiredClaimError as missing:
            raise InvalidToken(f"missing claim: {missing.claim}") from None
        except (jwt.PyJWTError, ValueError, TypeError):
            # Anything else the caller sent that PyJWT rejects: still their token, still 401.
            raise InvalidToken("malformed token") from None
        principal = _principal_from(claims)
        self._remember(token, principal, float(claims["exp"]))
        return principal

    def _remember(self, token: str, principal: Principal, expires_at: float) -> None:
        now = self._clock()
        trusted_until = min(expires_at + self.settings.leeway_seconds, now + REMEMBER_SECONDS)
        with self._remembering:
            self._remembered.pop(token, None)  # re-inserted last: the newest entry
            self._remembered[token] = (principal, trusted_until)
            while len(self._remembered) > self._remember_at_most:
                del self._remembered[next(iter(self._remembered))]

    def _algorithm_of(self, token: str) -> str:
        try:
            header = jwt.get_unverified_header(token)
        except (jwt.PyJWTError, ValueError, TypeError):
            raise InvalidToken("malformed token") from None
        algorithm = header.get("alg")
        if not isinstance(algorithm, str) or algorithm not in self._algorithms:
            raise InvalidToken("algorithm not accepted")
        return algorithm

    def _key_for(self, algorithm: str, token: str) -> Any:
        if algorithm in _SHARED_SECRET_ALGORITHMS:
            assert self.settings.secret is not None  # guaranteed by AuthSettings
            return self.settings.secret.get_secret_value()
        if self._jwks is not None:
            try:
                return self._jwks.get_signing_key_from_jwt(token).key
            except jwt.PyJWKClientConnectionError as unreachable:
                raise SigningKeysUnavailable(str(unreachable)) from unreachable
            except (jwt.PyJWTError, ValueError, TypeError):
                raise InvalidToken("no matching signing key") from None
        return self.settings.public_key_pem


def _principal_from(claims: dict[str, Any]) -> Principal:
    subject = claims.get("sub")
    tenant = claims.get("tenant")
    roles = claims.get("roles")
    if not isinstance(subject, str) or not subject.strip():
        raise InvalidToken("claim sub must be a non-empty string")
    if tenant is None:
        raise InvalidToken("missing claim: tenant")
    if not isinstance(tenant, str) or not tenant.strip():
        raise InvalidToken("claim tenant must be a non-empty string")
    if roles is None:
        raise InvalidToken("missing claim: roles")
    if not isinstance(roles, list) or not all(isinstance(role, str) for role in roles):
        raise InvalidToken("claim roles must be a list of strings")
    return Principal(subject=subject, tenant_id=tenant, roles=frozenset(roles), via="jwt")


def issue_token(
    settings: AuthSettings,
    subject: str,
    tenant: str,
    roles: Iterable[str],
    ttl_seconds: int = 3600,
    *,
    now: datetime | None = None,
) -> str:
    """Sign a token with the shared secret (``make token``, tests).

    ``now`` is injectable so tests can mint already-expired tokens without sleeping.
    """
    algorithm = next(
        (alg for alg in settings.accepted_algorithms if alg in _SHARED_SECRET_ALGORITHMS), None
    )
    if algorithm is None or settings.secret is None:
        raise ValueError("these auth settings accept no shared-secret algorithm to sign with")
    issued_at = now or datetime.now(UTC)
    claims = {
        "iss": settings.issuer,
        "aud": settings.audience,
        "sub": subject,
        "tenant": tenant,
        "roles": sorted(str(role) for role in roles),
        "iat": issued_at,
        "nbf": issued_at,
        "exp": issued_at + timedelta(seconds=ttl_seconds),
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, settings.secret.get_secret_value(), algorithm=algorithm)
