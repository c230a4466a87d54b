"""Who is calling: a bearer JWT or an API key, then the rate limits, then the route's
own credential (a survey link) or the caller's roles."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request, Security, status
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from libs.auth import Principal, Role
from libs.auth.dependencies import PRINCIPAL_STATE_KEY, current_principal
from libs.platform.errors import Forbidden
from libs.platform.problems import can_refuse
from libs.platform.request_context import ROUTE_TEMPLATE_KEY
from services.gateway.api.conventions import runtime_of
from services.gateway.authentication import ApiKeyRejected, ApiKeysUnavailable, Caller
from services.gateway.openapi import API_KEY_SCHEME, BEARER_SCHEME

API_KEYS_PERMISSION = "api_keys:manage"

# auto_error=False: the gateway answers 401 itself, naming both accepted credentials.
_bearer = HTTPBearer(auto_error=False, scheme_name=BEARER_SCHEME)
_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, scheme_name=API_KEY_SCHEME)


def _api_key_in_authorization(request: Request) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "apikey":
        return None
    return value.strip() or None


async def authenticated_caller(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    api_key_header: Annotated[str | None, Security(_api_key_header)],
) -> Caller:
    """The caller, from a bearer JWT or an API key (401 when neither holds)."""
    api_keys = {key for key in (api_key_header, _api_key_in_authorization(request)) if key}
    if len(api_keys) > 1 or (api_keys and bearer is not None):
        # Two credentials that may name two different callers: refuse to guess.
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="send one credential: a bearer token or an API key, not both",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not api_keys:
        # libs.auth's check, so the gateway refuses exactly what the services refuse.
        principal = await current_principal(request, bearer)
        assert bearer is not None  # current_principal refused a missing token
        return Caller(principal=principal, upstream_authorization=f"Bearer {bearer.credentials}")
    try:
        caller = await runtime_of(request).authenticator.authenticate(api_keys.pop())
    except ApiKeyRejected as rejected:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail=f"invalid API key: {rejected.reason}",
            headers={"WWW-Authenticate": 'ApiKey error="invalid_key"'},
        ) from None
    except ApiKeysUnavailable:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            detail="API keys are not accepted by this gateway at the moment",
        ) from None
    setattr(request.state, PRINCIPAL_STATE_KEY, caller.principal)
    return caller


@can_refuse(429)
async def admitted_caller(
    request: Request, caller: Annotated[Caller, Depends(authenticated_caller)]
) -> Caller:
    """An authenticated caller within its tenant's and its own rate limits (429 otherwise)."""
    principal = caller.principal
    runtime_of(request).rate_limits.admit(principal.tenant_id, principal.subject)
    return caller


async def forwarded_caller(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    api_key_header: Annotated[str | None, Security(_api_key_header)],
) -> Caller | None:
    """The admitted caller; None, without asking for credentials, on a path that holds
    its own (a survey link's one-time token), which its service checks."""
    route = runtime_of(request).routing.route_for(request.scope["path"])
    # Metrics and the access log name the service's route, not the forwarding catch-all,
    # also for a request refused before it is forwarded (401, 403, 429).
    request.scope[ROUTE_TEMPLATE_KEY] = route.template if route is not None else "unmatched"
    if route is not None and route.credential_in_path:
        return None
    caller = await authenticated_caller(request, bearer, api_key_header)
    return await admitted_caller(request, caller)


def admin_in_person(permission: str, managed: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency: the caller, holding ``permission`` and signed in as a person (a
    bearer token): a leaked API key must not mint credentials that outlive its
    revocation, nor let someone in."""

    @can_refuse(403)
    async def admin(caller: Annotated[Caller, Depends(admitted_caller)]) -> Principal:
        principal = caller.principal
        if not principal.may(permission):
            raise Forbidden(f"{permission} needs the role: {Role.ADMIN.value}")
        if principal.via != "jwt":
            raise Forbidden(f"{managed} are managed by a signed-in admin, not with an API key")
        return principal

    return admin


api_key_administrator = admin_in_person(API_KEYS_PERMISSION, "API keys")
