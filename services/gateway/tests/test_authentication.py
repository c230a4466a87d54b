"""Every /api request is authenticated before it reaches a service, and a service sees
the caller's tenant only from a token it can verify itself."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
from pydantic import SecretStr

from libs.auth import AuthSettings, TokenVerifier
from services.gateway.tests.support import AUTH, admin, bearer, create_key
from testing.problems import problem_of

CUSTOMERS = "/api/v1/customers"


async def test_a_request_without_credentials_is_401_and_never_forwarded(
    gateway: httpx.AsyncClient,
) -> None:
    response = await gateway.get(CUSTOMERS)

    assert response.status_code == 401
    assert problem_of(response) == {"detail": "authentication required"}
    assert response.headers["WWW-Authenticate"] == "Bearer"


async def test_an_unknown_path_asks_for_credentials_before_saying_it_does_not_exist(
    gateway: httpx.AsyncClient,
) -> None:
    assert (await gateway.get("/api/v1/secret-admin-panel")).status_code == 401

    response = await gateway.get("/api/v1/secret-admin-panel", headers=bearer())
    assert response.status_code == 404
    assert problem_of(response) == {"detail": "no service serves /api/v1/secret-admin-panel"}


async def test_a_token_signed_with_another_secret_is_refused(gateway: httpx.AsyncClient) -> None:
    forged = AuthSettings(secret=SecretStr("an-attacker-secret-that-is-long-enough-to-use"))

    response = await gateway.get(CUSTOMERS, headers=bearer(auth=forged))

    assert response.status_code == 401
    assert problem_of(response) == {"detail": "invalid token: bad signature"}
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


async def test_an_expired_token_is_refused(gateway: httpx.AsyncClient) -> None:
    two_hours_ago = datetime.now(UTC) - timedelta(hours=2)

    response = await gateway.get(CUSTOMERS, headers=bearer(now=two_hours_ago, ttl_seconds=60))

    assert response.status_code == 401
    assert problem_of(response) == {"detail": "invalid token: token expired"}


async def test_a_token_for_another_audience_is_refused(gateway: httpx.AsyncClient) -> None:
    other_api = AUTH.model_copy(update={"audience": "billing-api"})  # the same key

    response = await gateway.get(CUSTOMERS, headers=bearer(auth=other_api))

    assert response.status_code == 401
    assert problem_of(response) == {"detail": "invalid token: wrong audience"}


async def test_a_malformed_token_is_refused(gateway: httpx.AsyncClient) -> None:
    response = await gateway.get(CUSTOMERS, headers={"Authorization": "Bearer not-a-jwt"})

    assert response.status_code == 401
    assert problem_of(response) == {"detail": "invalid token: malformed token"}


async def test_the_service_sees_the_tokens_tenant_whatever_else_the_caller_claims(
    gateway: httpx.AsyncClient,
) -> None:
    response = await gateway.get(
        CUSTOMERS,
        headers={**bearer("acme"), "X-Tenant-ID": "globex", "Cookie": "tenant=globex"},
        params={"tenant": "globex"},
    )

    assert response.status_code == 200
    seen = response.json()
    assert seen["tenant"] == "acme"
    # Made-up tenant headers and cookies stay at the gateway.
    assert seen["headers"]["x-tenant-id"] is None
    assert seen["headers"]["cookie"] is None


async def test_a_jwt_callers_token_is_forwarded_unchanged(gateway: httpx.AsyncClient) -> None:
    headers = bearer("acme", ["viewer"], "auditor-9")

    response = await gateway.get(CUSTOMERS, headers=headers)

    assert response.status_code == 200
    assert response.json()["headers"]["authorization"] == headers["Authorization"]
    assert response.json()["subject"] == "auditor-9"


# --- roles -----------------------------------------------------------------------------


async def test_a_viewer_cannot_write_and_the_gateway_refuses_before_the_service(
    gateway: httpx.AsyncClient,
) -> None:
    response = await gateway.post(
        CUSTOMERS, json={"name": "Zhang Wei"}, headers=bearer(roles=["viewer"])
    )

    assert response.status_code == 403
    detail = response.json()["detail"]
    assert detail.startswith(f"POST {CUSTOMERS} needs one of the roles:")  # the path asked
    assert "viewer" not in detail and "sales" in detail


async def test_roles_outside_the_catalogue_grant_nothing(gateway: httpx.AsyncClient) -> None:
    response = await gateway.get(CUSTOMERS, headers=bearer(roles=["superuser"]))

    assert response.status_code == 403


async def test_the_services_finer_rule_is_passed_back_as_403(gateway: httpx.AsyncClient) -> None:
    # Sales may write customers, so the coarse check lets it through; contacts
    # itself refuses the merge (managers and admins only).
    response = await gateway.post("/api/v1/customers/c-1/merge", headers=bearer(roles=["sales"]))

    assert response.status_code == 403
    assert response.json()["detail"] == "customers:merge needs one of the roles: admin, manager"


async def test_custom_fields_are_defined_by_admins_only(gateway: httpx.AsyncClient) -> None:
    refused = await gateway.put(
        "/api/v1/custom-fields/vip_level", headers=bearer(roles=["manager"])
    )
    allowed = await gateway.put("/api/v1/custom-fields/vip_level", headers=admin())

    assert refused.status_code == 403
    assert allowed.status_code == 200
    assert allowed.json()["name"] == "vip_level"


# --- API keys --------------------------------------------------------------------------


async def test_an_api_key_caller_reaches_the_service_as_its_tenant_and_roles(
    gateway: httpx.AsyncClient,
) -> None:
    created = await create_key(gateway, roles=["integration"], tenant="acme")

    response = await gateway.get(CUSTOMERS, headers={"X-API-Key": created["key"]})

    assert response.status_code == 200
    seen = response.json()
    assert seen["tenant"] == "acme"
    assert seen["roles"] == ["integration"]
    assert seen["subject"] == f"api-key:{created['id']}"
    # The secret itself never travels further than the gateway.
    assert seen["headers"]["x-api-key"] is None
    assert created["key"] not in seen["headers"]["authorization"]


async def test_the_authorization_header_also_carries_an_api_key(
    gateway: httpx.AsyncClient,
) -> None:
    created = await create_key(gateway)

    response = await gateway.get(CUSTOMERS, headers={"Authorization": f"ApiKey {created['key']}"})

    assert response.status_code == 200
    assert response.json()["subject"] == f"api-key:{created['id']}"


async def test_the_token_forwarded_for_an_api_key_verifies_like_any_platform_token(
    gateway: httpx.AsyncClient,
) -> None:
    created = await create_key(gateway, roles=["integration", "viewer"], tenant="globex")

    response = await gateway.get(CUSTOMERS, headers={"X-API-Key": created["key"]})

    forwarded = response.json()["headers"]["authorization"].removeprefix("Bearer ")
    principal = TokenVerifier(AUTH).verify(forwarded)
    assert principal.tenant_id == "globex"
    assert principal.roles == {"integration", "viewer"}
    assert principal.subject == f"api-key:{created['id']}"


async def test_an_unknown_api_key_is_refused(gateway: httpx.AsyncClient) -> None:
    response = await gateway.get(CUSTOMERS, headers={"X-API-Key": "crm_" + "x" * 43})

    assert response.status_code == 401
    assert problem_of(response) == {"detail": "invalid API key: unknown key"}


async def test_a_revoked_api_key_is_refused_at_once(gateway: httpx.AsyncClient) -> None:
    created = await create_key(gateway)
    key = {"X-API-Key": created["key"]}
    assert (await gateway.get(CUSTOMERS, headers=key)).status_code == 200

    revoked = await gateway.delete(f"/api/v1/api-keys/{created['id']}", headers=admin())
    response = await gateway.get(CUSTOMERS, headers=key)

    assert revoked.status_code == 204
    assert response.status_code == 401
    assert problem_of(response) == {"detail": "invalid API key: revoked"}


async def test_an_api_keys_roles_decide_what_it_may_do(gateway: httpx.AsyncClient) -> None:
    created = await create_key(gateway, roles=["viewer"])

    response = await gateway.post(
        CUSTOMERS, json={"name": "Zhang Wei"}, headers={"X-API-Key": created["key"]}
    )

    assert response.status_code == 403


async def test_two_credentials_at_once_are_refused(gateway: httpx.AsyncClient) -> None:
    created = await create_key(gateway)

    response = await gateway.get(CUSTOMERS, headers={**bearer(), "X-API-Key": created["key"]})

    assert response.status_code == 401
    assert "not both" in response.json()["detail"]
