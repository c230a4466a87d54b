"""API keys: created, listed and revoked by a signed-in admin of the tenant."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import Depends, Request, Response
from pydantic import BaseModel, Field

from libs.auth import Principal, Role
from libs.platform.routing import ServiceRouter
from services.gateway.api.callers import api_key_administrator
from services.gateway.api.conventions import body_of, documented_body, runtime_of
from services.gateway.api_keys import ApiKey, issue_api_key

API_KEYS_PATH = "/api/v1/api-keys"

router = ServiceRouter()


class CreateApiKey(BaseModel):
    name: str = Field(min_length=1, max_length=200, examples=["ERP nightly sync"])
    roles: list[Role] = Field(min_length=1, examples=[["integration"]])


class ApiKeyView(BaseModel):
    id: str
    name: str
    roles: list[str]
    prefix: str = Field(description="The first characters of the key, to tell keys apart")
    status: Literal["active", "revoked"]
    created_at: datetime
    created_by: str
    last_used_at: datetime | None
    revoked_at: datetime | None
    revoked_by: str | None

    @classmethod
    def of(cls, api_key: ApiKey) -> ApiKeyView:
        return cls(
            id=api_key.id,
            name=api_key.name,
            roles=sorted(api_key.roles),
            prefix=api_key.visible_prefix,
            status="revoked" if api_key.revoked else "active",
            created_at=api_key.created_at,
            created_by=api_key.created_by,
            last_used_at=api_key.last_used_at,
            revoked_at=api_key.revoked_at,
            revoked_by=api_key.revoked_by,
        )


class CreatedApiKey(ApiKeyView):
    key: str = Field(description="The secret itself: shown this once, never again")


class ApiKeyList(BaseModel):
    items: list[ApiKeyView]


# The body is read after the permission check (a declared body parameter would be
# parsed first, so a viewer sending a malformed body got a 422 instead of its 403).
@router.post(
    API_KEYS_PATH,
    status_code=201,
    tags=["api keys"],
    responses={422: {"description": "The body is not JSON, or a field is invalid (errors)"}},
    openapi_extra=documented_body(CreateApiKey),
)
async def create_api_key(
    request: Request,
    response: Response,
    admin: Annotated[Principal, Depends(api_key_administrator)],
) -> CreatedApiKey:
    """Create an API key for the caller's tenant. The response is the only place the key appears."""
    command = await body_of(request, CreateApiKey)
    issued = issue_api_key(
        tenant_id=admin.tenant_id,
        name=command.name,
        roles=[role.value for role in command.roles],
        created_by=admin.subject,
        now=datetime.now(UTC),
    )
    api_key = await runtime_of(request).api_keys.add(issued)
    response.headers["Location"] = f"{API_KEYS_PATH}/{api_key.id}"
    # The body holds a secret: no cache on the way may keep a copy.
    response.headers["Cache-Control"] = "no-store"
    return CreatedApiKey(**ApiKeyView.of(api_key).model_dump(), key=issued.secret)


@router.get(API_KEYS_PATH, tags=["api keys"])
async def list_api_keys(
    request: Request, admin: Annotated[Principal, Depends(api_key_administrator)]
) -> ApiKeyList:
    """Every key of the caller's tenant, revoked ones included; never a secret."""
    keys = await runtime_of(request).api_keys.list_for_tenant(admin.tenant_id)
    return ApiKeyList(items=[ApiKeyView.of(api_key) for api_key in keys])


@router.get(API_KEYS_PATH + "/{key_id}", tags=["api keys"])
async def get_api_key(
    key_id: str, request: Request, admin: Annotated[Principal, Depends(api_key_administrator)]
) -> ApiKeyView:
    return ApiKeyView.of(await runtime_of(request).api_keys.get(admin.tenant_id, key_id))


@router.delete(API_KEYS_PATH + "/{key_id}", status_code=204, tags=["api keys"])
async def revoke_api_key(
    key_id: str, request: Request, admin: Annotated[Principal, Depends(api_key_administrator)]
) -> None:
    """Revoke a key of the caller's tenant: refused from now on (other gateway processes
    follow within API_KEY_CACHE_SECONDS). Revoking twice is harmless."""
    runtime = runtime_of(request)
    await runtime.api_keys.revoke(admin.tenant_id, key_id, by=admin.subject, now=datetime.now(UTC))
    runtime.authenticator.forget(key_id)
