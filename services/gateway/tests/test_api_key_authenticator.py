"""The API-key authenticator keeps the database off the hot path, within stated bounds."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import jwt
import pytest

from libs.auth import AuthSettings, TokenVerifier
from libs.platform.db import create_engine
from libs.platform.migrations import migrate
from services.gateway.api_keys import ApiKey, ApiKeyStore, IssuedApiKey, api_keys, issue_api_key
from services.gateway.authentication import (
    ApiKeyAuthenticator,
    ApiKeyRejected,
    ApiKeysUnavailable,
)
from services.gateway.migrations import FOLDER as MIGRATIONS
from services.gateway.tests.support import AUTH

T0 = datetime(2030, 1, 1, 9, 0, tzinfo=UTC)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def store(pg_url: str) -> AsyncIterator[ApiKeyStore]:
    engine = create_engine(pg_url)
    store = ApiKeyStore(engine)
    await migrate(engine, MIGRATIONS)
    yield store
    await engine.dispose()


async def stored_key(store: ApiKeyStore, roles: tuple[str, ...] = ("integration",)) -> IssuedApiKey:
    issued = issue_api_key(tenant_id="acme", name="ERP", roles=roles, created_by="a", now=T0)
    await store.add(issued)
    return issued


def authenticator(
    store: ApiKeyStore, clock: FakeClock, *, auth: AuthSettings = AUTH
) -> ApiKeyAuthenticator:
    # The wall clock is real: forwarded tokens must verify now, not in 2030.
    return ApiKeyAuthenticator(
        store,
        auth,
        cache_seconds=5,
        forwarded_token_seconds=120,
        record_use_every_seconds=60,
        clock=clock,
    )


async def test_a_revocation_elsewhere_takes_effect_within_the_cache_time(
    store: ApiKeyStore,
) -> None:
    clock = FakeClock()
    issued = await stored_key(store)
    keys = authenticator(store, clock)
    await keys.authenticate(issued.secret)

    # Revoked by another gateway process: straight in the database.
    await store.revoke("acme", issued.api_key.id, by="admin-1", now=T0)
    clock.now += 4
    await keys.authenticate(issued.secret)  # still trusted from the cache
    clock.now += 1

    with pytest.raises(ApiKeyRejected) as rejected:
        await keys.authenticate(issued.secret)
    assert rejected.value.reason == "revoked"


async def test_a_revocation_in_this_process_takes_effect_at_once(store: ApiKeyStore) -> None:
    clock = FakeClock()
    issued = await stored_key(store)
    keys = authenticator(store, clock)
    await keys.authenticate(issued.secret)

    await store.revoke("acme", issued.api_key.id, by="admin-1", now=T0)
    keys.forget(issued.api_key.id)

    with pytest.raises(ApiKeyRejected):
        await keys.authenticate(issued.secret)


async def test_last_use_is_written_at_most_once_a_minute(store: ApiKeyStore) -> None:
    clock = FakeClock()
    issued = await stored_key(store)
    keys = authenticator(store, clock)

    await keys.authenticate(issued.secret)
    first = (await store.get("acme", issued.api_key.id)).last_used_at
    clock.now += 30
    await keys.authenticate(issued.secret)
    unchanged = (await store.get("acme", issued.api_key.id)).last_used_at
    clock.now += 31
    await keys.authenticate(issued.secret)
    later = (await store.get("acme", issued.api_key.id)).last_used_at

    assert first is not None and unchanged == first
    assert later is not None and later > first


async def test_the_forwarded_token_is_reused_then_renewed_at_half_its_life(
    store: ApiKeyStore,
) -> None:
    clock = FakeClock()
    issued = await stored_key(store, roles=("integration", "viewer"))
    keys = authenticator(store, clock)

    first = await keys.authenticate(issued.secret)
    clock.now += 59
    reused = await keys.authenticate(issued.secret)
    clock.now += 1
    renewed = await keys.authenticate(issued.secret)

    assert reused.upstream_authorization == first.upstream_authorization
    assert renewed.upstream_authorization != first.upstream_authorization
    token = renewed.upstream_authorization.removeprefix("Bearer ")
    principal = TokenVerifier(AUTH).verify(token)
    assert principal.tenant_id == "acme"
    assert principal.roles == {"integration", "viewer"}
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 120


class UnreachableStore(ApiKeyStore):
    async def find_by_secret(self, secret: str) -> ApiKey | None:
        raise AssertionError("looked up a secret that cannot be a key")


async def test_keys_that_do_not_look_like_keys_cost_no_query(store: ApiKeyStore) -> None:
    keys = authenticator(UnreachableStore(store.engine), FakeClock())

    for secret in ("not-a-key", "crm_" + "x" * 300):
        with pytest.raises(ApiKeyRejected) as rejected:
            await keys.authenticate(secret)
        # The same wording as a well-formed unknown key: nothing to learn from it.
        assert rejected.value.reason == "unknown key"


async def test_without_a_shared_secret_api_keys_are_unavailable_not_invalid(
    store: ApiKeyStore,
) -> None:
    issued = await stored_key(store)
    production_like = AuthSettings(jwks_url="https://idp.example.com/.well-known/jwks.json")
    keys = authenticator(store, FakeClock(), auth=production_like)

    assert not keys.signs_tokens
    with pytest.raises(ApiKeysUnavailable):
        await keys.authenticate(issued.secret)


async def test_changed_roles_are_picked_up_with_a_new_token(store: ApiKeyStore) -> None:
    clock = FakeClock()
    issued = await stored_key(store)
    keys = authenticator(store, clock)
    before = await keys.authenticate(issued.secret)

    async with store.engine.begin() as conn:
        await conn.execute(
            api_keys.update().where(api_keys.c.id == issued.api_key.id).values(roles=["viewer"])
        )
    clock.now += 6
    after = await keys.authenticate(issued.secret)

    assert before.principal.roles == {"integration"}
    assert after.principal.roles == {"viewer"}
    token = after.upstream_authorization.removeprefix("Bearer ")
    assert TokenVerifier(AUTH).verify(token).roles == {"viewer"}
