"""API keys: issued once, stored hashed, scoped to a tenant, revocable; managed by admins."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select

from libs.platform.db import create_engine
from libs.platform.errors import Unprocessable
from libs.platform.migrations import migrate
from services.gateway.api_keys import (
    ApiKeyNotFound,
    ApiKeyStore,
    api_keys,
    hash_secret,
    issue_api_key,
)
from services.gateway.migrations import FOLDER as MIGRATIONS
from services.gateway.tests.support import admin, bearer, create_key

T0 = datetime(2030, 1, 1, 9, 0, tzinfo=UTC)
KEYS = "/api/v1/api-keys"


# --- issuing (no I/O) -------------------------------------------------------------------


def test_a_new_key_is_a_long_random_secret_with_a_recognisable_prefix() -> None:
    first = issue_api_key(
        tenant_id="acme", name="ERP", roles=["integration"], created_by="a", now=T0
    )
    second = issue_api_key(
        tenant_id="acme", name="ERP", roles=["integration"], created_by="a", now=T0
    )

    assert first.secret.startswith("crm_")
    assert len(first.secret) >= 4 + 43  # 256 bits, base64url
    assert first.secret != second.secret
    assert first.api_key.visible_prefix == first.secret[:12]
    assert first.api_key.subject == f"api-key:{first.api_key.id}"


@pytest.mark.parametrize(
    ("name", "roles", "field"),
    [
        ("  ", ["integration"], "name"),
        ("ERP", [], "roles"),
        ("ERP", ["integration", "root"], "roles"),
        ("ERP", ["operator"], "roles"),  # the host's, never a tenant's to give
    ],
)
def test_a_key_needs_a_name_and_known_roles(name: str, roles: list[str], field: str) -> None:
    with pytest.raises(Unprocessable) as refused:
        issue_api_key(tenant_id="acme", name=name, roles=roles, created_by="a", now=T0)

    assert refused.value.field == field


# --- the store, on PostgreSQL --------------------------------------------------------------


@pytest.fixture
async def store(pg_url: str) -> AsyncIterator[ApiKeyStore]:
    engine = create_engine(pg_url)
    store = ApiKeyStore(engine)
    await migrate(engine, MIGRATIONS)
    yield store
    await engine.dispose()


async def test_only_the_hash_of_the_secret_is_stored(store: ApiKeyStore) -> None:
    issued = issue_api_key(
        tenant_id="acme", name="ERP", roles=["integration"], created_by="a", now=T0
    )
    await store.add(issued)

    async with store.engine.connect() as conn:
        row = (await conn.execute(select(api_keys))).mappings().one()

    assert issued.secret not in [str(value) for value in row.values()]
    assert row["secret_sha256"] == hashlib.sha256(issued.secret.encode()).hexdigest()
    assert row["secret_sha256"] == hash_secret(issued.secret)


async def test_a_key_is_found_by_its_secret_only(store: ApiKeyStore) -> None:
    issued = issue_api_key(
        tenant_id="acme", name="ERP", roles=["integration", "viewer"], created_by="a", now=T0
    )
    await store.add(issued)

    found = await store.find_by_secret(issued.secret)

    assert found == issued.api_key
    assert await store.find_by_secret(issued.secret + "x") is None


async def test_keys_are_listed_and_revoked_per_tenant(store: ApiKeyStore) -> None:
    acme = issue_api_key(
        tenant_id="acme", name="ERP", roles=["integration"], created_by="a", now=T0
    )
    globex = issue_api_key(
        tenant_id="globex", name="BI", roles=["viewer"], created_by="g", now=T0 + timedelta(1)
    )
    await store.add(acme)
    await store.add(globex)

    assert [key.id for key in await store.list_for_tenant("acme")] == [acme.api_key.id]
    with pytest.raises(ApiKeyNotFound):
        await store.revoke("acme", globex.api_key.id, by="a", now=T0)
    with pytest.raises(ApiKeyNotFound):
        await store.get("acme", globex.api_key.id)
    assert (await store.get("globex", globex.api_key.id)).revoked is False


async def test_revoking_twice_keeps_the_first_revocation(store: ApiKeyStore) -> None:
    issued = issue_api_key(
        tenant_id="acme", name="ERP", roles=["integration"], created_by="a", now=T0
    )
    await store.add(issued)

    first = await store.revoke("acme", issued.api_key.id, by="admin-1", now=T0 + timedelta(hours=1))
    again = await store.revoke("acme", issued.api_key.id, by="admin-2", now=T0 + timedelta(hours=2))

    assert first.revoked_at == again.revoked_at == T0 + timedelta(hours=1)
    assert again.revoked_by == "admin-1"
    found = await store.find_by_secret(issued.secret)
    assert found is not None and found.revoked


async def test_the_last_use_is_recorded(store: ApiKeyStore) -> None:
    issued = issue_api_key(
        tenant_id="acme", name="ERP", roles=["integration"], created_by="a", now=T0
    )
    await store.add(issued)

    await store.record_use(issued.api_key.id, T0 + timedelta(minutes=5))

    assert (await store.get("acme", issued.api_key.id)).last_used_at == T0 + timedelta(minutes=5)


# --- the admin endpoints ------------------------------------------------------------------


async def test_creating_a_key_shows_the_secret_once(gateway: httpx.AsyncClient) -> None:
    response = await gateway.post(
        KEYS, json={"name": "ERP nightly sync", "roles": ["integration"]}, headers=admin()
    )

    assert response.status_code == 201
    created = response.json()
    assert created["key"].startswith("crm_")
    assert created["name"] == "ERP nightly sync"
    assert created["roles"] == ["integration"]
    assert created["status"] == "active"
    assert created["created_by"] == "admin-1"
    assert response.headers["Location"] == f"{KEYS}/{created['id']}"
    assert response.headers["Cache-Control"] == "no-store"

    shown_again = await gateway.get(f"{KEYS}/{created['id']}", headers=admin())
    listed = await gateway.get(KEYS, headers=admin())
    assert "key" not in shown_again.json()
    assert created["key"] not in listed.text
    assert shown_again.json()["prefix"] == created["key"][:12]


async def test_the_list_holds_the_callers_tenant_only(gateway: httpx.AsyncClient) -> None:
    acme_key = await create_key(gateway, tenant="acme", name="acme ERP")
    globex_key = await create_key(gateway, tenant="globex", name="globex BI")

    acme = (await gateway.get(KEYS, headers=admin("acme"))).json()["items"]
    globex = (await gateway.get(KEYS, headers=admin("globex"))).json()["items"]

    assert [key["id"] for key in acme] == [acme_key["id"]]
    assert [key["id"] for key in globex] == [globex_key["id"]]


async def test_another_tenants_key_cannot_be_seen_or_revoked(gateway: httpx.AsyncClient) -> None:
    globex_key = await create_key(gateway, tenant="globex")

    seen = await gateway.get(f"{KEYS}/{globex_key['id']}", headers=admin("acme"))
    revoked = await gateway.delete(f"{KEYS}/{globex_key['id']}", headers=admin("acme"))
    still_works = await gateway.get("/api/v1/customers", headers={"X-API-Key": globex_key["key"]})

    assert seen.status_code == 404
    assert revoked.status_code == 404
    assert still_works.status_code == 200


async def test_a_revoked_key_stays_listed_as_revoked(gateway: httpx.AsyncClient) -> None:
    created = await create_key(gateway)

    await gateway.delete(f"{KEYS}/{created['id']}", headers=admin())
    listed = (await gateway.get(KEYS, headers=admin())).json()["items"]

    assert [(key["id"], key["status"], key["revoked_by"]) for key in listed] == [
        (created["id"], "revoked", "admin-1")
    ]


async def test_last_use_shows_in_the_list(gateway: httpx.AsyncClient) -> None:
    created = await create_key(gateway)
    assert (await gateway.get(f"{KEYS}/{created['id']}", headers=admin())).json()[
        "last_used_at"
    ] is None

    await gateway.get("/api/v1/customers", headers={"X-API-Key": created["key"]})

    shown = (await gateway.get(f"{KEYS}/{created['id']}", headers=admin())).json()
    assert shown["last_used_at"] is not None


@pytest.mark.parametrize("role", ["manager", "sales", "integration", "viewer"])
async def test_only_admins_manage_keys(gateway: httpx.AsyncClient, role: str) -> None:
    caller = bearer(roles=[role])

    created = await gateway.post(KEYS, json={"name": "x", "roles": ["viewer"]}, headers=caller)
    listed = await gateway.get(KEYS, headers=caller)

    assert created.status_code == 403
    assert listed.status_code == 403


@pytest.mark.parametrize("body", [b'{"name": ', b'{"name": "\xff"}', b'{"roles": "admin"}'])
async def test_a_caller_who_may_not_manage_keys_is_refused_before_the_body_is_read(
    gateway: httpx.AsyncClient, body: bytes
) -> None:
    headers = {**bearer(roles=["viewer"]), "Content-Type": "application/json"}

    response = await gateway.post(KEYS, content=body, headers=headers)

    assert response.status_code == 403


@pytest.mark.parametrize("body", [b'{"name": ', b'{"name": "\xff"}'])
async def test_an_admin_sending_a_body_that_is_not_json_gets_a_422_on_the_body(
    gateway: httpx.AsyncClient, body: bytes
) -> None:
    headers = {**admin(), "Content-Type": "application/json"}

    response = await gateway.post(KEYS, content=body, headers=headers)

    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "body"


async def test_an_admin_api_key_cannot_mint_more_keys(gateway: httpx.AsyncClient) -> None:
    created = await create_key(gateway, roles=["admin"])

    response = await gateway.post(
        KEYS, json={"name": "shadow", "roles": ["admin"]}, headers={"X-API-Key": created["key"]}
    )

    assert response.status_code == 403


async def test_unknown_roles_are_a_422_naming_the_field(gateway: httpx.AsyncClient) -> None:
    response = await gateway.post(KEYS, json={"name": "x", "roles": ["root"]}, headers=admin())

    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "roles.0"


async def test_key_management_needs_credentials(gateway: httpx.AsyncClient) -> None:
    assert (await gateway.get(KEYS)).status_code == 401
    assert (await gateway.put(KEYS, headers=admin())).status_code == 405


async def test_whatever_a_valid_token_names_is_stored_not_a_500(
    gateway: httpx.AsyncClient,
) -> None:
    long_subject = "svc-" + "x" * 300

    response = await gateway.post(
        KEYS,
        json={"name": "ERP", "roles": ["integration"]},
        headers=bearer(roles=["admin"], subject=long_subject),
    )

    assert response.status_code == 201
    assert response.json()["created_by"] == long_subject
