"""Who is calling: a bearer JWT, or an API key exchanged for a short-lived JWT.

The services verify bearer tokens themselves (``libs.auth``) and know nothing of
API keys. So for an API-key caller the gateway signs a JWT of its own for the
key's principal (same issuer, audience and secret as every token) and forwards
that; a JWT caller's token is forwarded as it came. Either way the service sees
one kind of credential and takes the tenant from it, never from anything else
the caller sent.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from libs.auth import AuthSettings, Principal, issue_token
from services.gateway.api_keys import SECRET_PREFIX, ApiKey, ApiKeyStore, hash_secret

Clock = Callable[[], float]
WallClock = Callable[[], datetime]

# A real key is far shorter; anything longer is refused before it costs a query.
_MAX_SECRET_LENGTH = 200


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated caller and the credential the upstream service will see."""

    principal: Principal
    upstream_authorization: str


class ApiKeyRejected(Exception):
    """The key cannot be used; ``reason`` is safe to show (the caller holds the secret)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ApiKeysUnavailable(Exception):
    """This gateway has no shared secret to sign forwarded tokens with: our setup, not theirs."""


@dataclass(slots=True)
class _KnownKey:
    api_key: ApiKey
    fetched_at: float
    use_recorded_at: float | None = None
    token: str | None = None
    token_renew_at: float = 0.0


def _grants(api_key: ApiKey) -> tuple[str, frozenset[str], datetime | None]:
    return api_key.tenant_id, api_key.roles, api_key.revoked_at


def can_sign_forwarded_tokens(settings: AuthSettings) -> bool:
    return settings.secret is not None and any(
        algorithm.startswith("HS") for algorithm in settings.accepted_algorithms
    )


class ApiKeyAuthenticator:
    """Turns an API key into a Caller, keeping the database off the hot path.

    Looked-up keys are trusted for ``cache_seconds`` (revoking through this process
    takes effect at once, through another within that time); ``last_used_at`` is
    written at most once per ``record_use_every_seconds`` per key, since a write per
    request would make every read a write.
    """

    MAX_CACHED_KEYS = 10_000

    def __init__(
        self,
        store: ApiKeyStore,
        auth: AuthSettings,
        *,
        cache_seconds: float,
        forwarded_token_seconds: int,
        record_use_every_seconds: float = 60.0,
        clock: Clock = time.monotonic,
        wall_clock: WallClock = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.auth = auth
        self.cache_seconds = cache_seconds
        self.forwarded_token_seconds = forwarded_token_seconds
        self.record_use_every_seconds = record_use_every_seconds
        self.signs_tokens = can_sign_forwarded_tokens(auth)
        self._clock = clock
        self._wall_clock = wall_clock
        self._known: dict[str, _KnownKey] = {}

    async def authenticate(self, secret: str) -> Caller:
        if not secret.startswith(SECRET_PREFIX) or len(secret) > _MAX_SECRET_LENGTH:
            raise ApiKeyRejected("unknown key")
        known = await self._lookup(secret)
        api_key = known.api_key
        if api_key.revoked:
            raise ApiKeyRejected("revoked")
        if not self.signs_tokens:
            raise ApiKeysUnavailable()
        await self._record_use(known)
        principal = Principal(
            subject=api_key.subject,
            tenant_id=api_key.tenant_id,
            roles=api_key.roles,
            via="api_key",
        )
        return Caller(principal=principal, upstream_authorization=f"Bearer {self._token(known)}")

    def forget(self, key_id: str) -> None:
        """Drop a key from the cache (after revoking it here)."""
        self._known = {
            digest: known for digest, known in self._known.items() if known.api_key.id != key_id
        }

    async def _lookup(self, secret: str) -> _KnownKey:
        digest = hash_secret(secret)
        now = self._clock()
        known = self._known.get(digest)
        if known is not None and now - known.fetched_at < self.cache_seconds:
            return known
        api_key = await self.store.find_by_secret(secret)
        if api_key is None:
            self._known.pop(digest, None)
            raise ApiKeyRejected("unknown key")
        if known is None or _grants(known.api_key) != _grants(api_key):
            # A fresh entry when what the key grants changed: no token with old roles.
            known = _KnownKey(api_key=api_key, fetched_at=now)
        known.api_key = api_key
        known.fetched_at = now
        if len(self._known) >= self.MAX_CACHED_KEYS:
            self._known.clear()
        self._known[digest] = known
        return known

    async def _record_use(self, known: _KnownKey) -> None:
        now = self._clock()
        recorded = known.use_recorded_at
        if recorded is not None and now - recorded < self.record_use_every_seconds:
            return
        known.use_recorded_at = now
        await self.store.record_use(known.api_key.id, self._wall_clock())

    def _token(self, known: _KnownKey) -> str:
        now = self._clock()
        if known.token is None or now >= known.token_renew_at:
            api_key = known.api_key
            known.token = issue_token(
                self.auth,
                api_key.subject,
                api_key.tenant_id,
                api_key.roles,
                ttl_seconds=self.forwarded_token_seconds,
                now=self._wall_clock(),
            )
            # Renewed at half its life, so a forwarded token always has time left
            # for a long request (an import) to be verified by the service.
            known.token_renew_at = now + self.forwarded_token_seconds / 2
        return known.token
