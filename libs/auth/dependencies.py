"""FastAPI dependencies: authenticate the caller, then check the permission matrix.

    @router.post("/customers")
    async def register_customer(
        command: RegisterCustomer,
        principal: Annotated[Principal, Depends(require("customers:write"))],
    ) -> ...

The verifier is looked up on ``app.state`` (``bind_token_verifier``) so routers
can be declared at import time, before any settings exist.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from libs.auth.roles import roles_allowed
from libs.auth.tokens import InvalidToken, Principal, SigningKeysUnavailable, TokenVerifier
from libs.platform.problems import can_refuse

# auto_error=False: we answer 401 ourselves, with the reason and the RFC 6750 header.
_bearer = HTTPBearer(auto_error=False, description="JWT issued by the platform's identity provider")

_VERIFIER_STATE = "token_verifier"
PRINCIPAL_STATE_KEY = "principal"

PrincipalDependency = Callable[..., Coroutine[Any, Any, Principal]]


def bind_token_verifier(app: FastAPI, verifier: TokenVerifier) -> None:
    setattr(app.state, _VERIFIER_STATE, verifier)


def _verifier_of(request: Request) -> TokenVerifier:
    verifier = getattr(request.app.state, _VERIFIER_STATE, None)
    if not isinstance(verifier, TokenVerifier):
        # A wiring mistake in the service, never the caller's: fail loudly.
        raise RuntimeError("no TokenVerifier bound; call bind_token_verifier(app, verifier)")
    return verifier


def _unauthorized(reason: str | None) -> HTTPException:
    # RFC 6750 §3.1: no error code when the request carried no credentials at all.
    challenge = "Bearer"
    if reason is not None:
        challenge = f'Bearer error="invalid_token", error_description="{reason}"'
    return HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail="authentication required" if reason is None else f"invalid token: {reason}",
        headers={"WWW-Authenticate": challenge},
    )


async def current_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """Any authenticated caller, whatever its roles (401 otherwise)."""
    if credentials is None or not credentials.credentials:
        raise _unauthorized(None)
    verifier = _verifier_of(request)
    token = credentials.credentials
    try:
        # A token seen before needs no thread hop, even when keys come from a JWKS.
        principal = verifier.remembered(token)
        if principal is None:
            if verifier.fetches_keys:
                principal = await run_in_threadpool(verifier.verify, token)
            else:
                principal = verifier.verify(token)
    except InvalidToken as invalid:
        raise _unauthorized(invalid.reason) from None
    except SigningKeysUnavailable:
        raise HTTPException(
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            detail="signing keys unavailable, try again shortly",
            headers={"Retry-After": "5"},
        ) from None
    # Kept on the request so the access log can say who did what, for which tenant.
    setattr(request.state, PRINCIPAL_STATE_KEY, principal)
    return principal


def require(permission: str) -> PrincipalDependency:
    """Dependency factory: the caller, if one of its roles grants ``permission``.

    An unknown permission raises ``UnknownPermission`` here, when the router is
    declared, so a typo never ships as an endpoint nobody may call.
    """
    allowed = roles_allowed(permission)

    async def permitted_principal(
        principal: Annotated[Principal, Depends(current_principal)],
    ) -> Principal:
        if principal.roles.isdisjoint(allowed):
            raise HTTPException(
                status_code=status.HTTP_403_FORBIDDEN,
                detail=f"{permission} needs one of the roles: {', '.join(sorted(allowed))}",
            )
        return principal

    permitted_principal.__name__ = f"require_{permission.replace(':', '_')}"
    return can_refuse(403)(permitted_principal)
