"""Signing in to the console: ``/auth/...`` at the gateway (decision 0108).

* ``POST /auth/sign-in``: tenant, e-mail and password; opens a session (cookie) and
  answers a short-lived bearer token;
* ``POST /auth/refresh``: a new bearer token for the session in the cookie;
* ``POST /auth/sign-out``: ends the session;
* ``POST /auth/password``: sets a password from an invitation or reset link, and
  signs in;
* ``GET /auth/methods``: what the sign-in page offers (password, single sign-on);
* ``GET /auth/oidc/start`` and ``/auth/oidc/callback``: single sign-on.

Scripts keep using tokens from ``crm token`` or API keys; nothing here changes how
``/api`` checks a bearer token.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Annotated

import structlog
from fastapi import Cookie, HTTPException, Query, Request, Response, status
from fastapi.responses import RedirectResponse
from prometheus_client import Counter
from pydantic import BaseModel, Field

from libs.auth import issue_token
from libs.platform.errors import Unprocessable
from libs.platform.routing import ServiceRouter
from services.gateway.api.conventions import CONSOLE_PATH, runtime_of
from services.gateway.open_resources import GatewayRuntime
from services.gateway.sessions import COOKIE, COOKIE_PATH, Session
from services.gateway.single_sign_on import (
    STATE_COOKIE,
    STATE_COOKIE_PATH,
    STATE_SECONDS,
    PendingSignOn,
    SignOnRefused,
    identity_from,
)
from services.gateway.users import (
    MAX_PASSWORD_LENGTH,
    Lockout,
    User,
    email_of,
    hash_password,
    password_matches,
)

log = structlog.get_logger("crm.gateway.sign_in")

# Refusals climbing against one tenant are someone guessing passwords; lockouts say whom.
SIGN_INS = Counter(
    "crm_gateway_sign_ins_total",
    "Console sign-ins, by method (password, single_sign_on) and outcome "
    "(signed_in, refused, locked_out)",
    ["method", "outcome"],
)

router = ServiceRouter(tags=["sign-in"])

# One answer for every refusal: who exists, who is locked, is nobody else's business.
_REFUSED = "wrong e-mail or password, or too many attempts: try again later"


class SignIn(BaseModel):
    tenant: str = Field(min_length=1, max_length=64, examples=["demo"])
    email: str = Field(min_length=3, max_length=320, examples=["zhang.wei@acme.cn"])
    password: str = Field(min_length=1, max_length=MAX_PASSWORD_LENGTH)


class SetPassword(BaseModel):
    token: str = Field(
        min_length=1, max_length=200, description="From the invitation or reset link"
    )
    password: str = Field(min_length=1, max_length=MAX_PASSWORD_LENGTH)


class SessionToken(BaseModel):
    access_token: str
    token_type: str = "Bearer"
    expires_in: int = Field(description="Seconds; ask /auth/refresh for the next one before then")
    subject: str
    tenant: str
    roles: list[str]


class SignInMethods(BaseModel):
    password: bool = Field(description="Whether this gateway can sign people in with a password")
    single_sign_on: str | None = Field(description="The identity provider's name, if one is set")


def _now() -> datetime:
    return datetime.now(UTC)


def _signing_available(runtime: GatewayRuntime) -> None:
    if not runtime.authenticator.signs_tokens:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            detail="console sign-in needs JWT_SECRET with HS256 among JWT_ALGORITHMS",
        )


def _secure(request: Request, runtime: GatewayRuntime) -> bool:
    return (
        runtime.settings.session_cookie_secure == "always"
        or request.url.scheme == "https"
        or request.headers.get("x-forwarded-proto", "").split(",")[0].strip() == "https"
    )


def public_base(request: Request, runtime: GatewayRuntime) -> str:
    return (runtime.settings.public_url or str(request.base_url)).rstrip("/")


def _token_for(runtime: GatewayRuntime, session: Session, roles: frozenset[str]) -> SessionToken:
    seconds = runtime.settings.session_token_seconds
    token = issue_token(
        runtime.authenticator.auth, session.subject, session.tenant_id, roles, ttl_seconds=seconds
    )
    return SessionToken(
        access_token=token,
        expires_in=seconds,
        subject=session.subject,
        tenant=session.tenant_id,
        roles=sorted(roles),
    )


async def _open_for_user(
    request: Request, response: Response, runtime: GatewayRuntime, user: User, now: datetime
) -> SessionToken:
    session, secret = await runtime.sessions.open(
        tenant_id=user.tenant_id,
        subject=user.subject,
        roles=user.roles,
        via="password",
        user_id=user.id,
        now=now,
    )
    _set_session_cookie(request, response, runtime, secret)
    return _token_for(runtime, session, user.roles)


def _set_session_cookie(
    request: Request, response: Response, runtime: GatewayRuntime, secret: str
) -> None:
    response.set_cookie(
        COOKIE,
        secret,
        max_age=int(timedelta(days=runtime.settings.session_lifetime_days).total_seconds()),
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=_secure(request, runtime),
    )
    response.headers["Cache-Control"] = "no-store"


async def _checked(user: User | None, password: str) -> bool:
    """The Argon2 check in a worker thread: tens of milliseconds of CPU each, which on the
    event loop would hold up every other request through this gateway process."""
    return await asyncio.to_thread(password_matches, user, password)


def _refused() -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail=_REFUSED, headers={"WWW-Authenticate": "Bearer"}
    )


@router.get("/auth/methods")
async def sign_in_methods(request: Request) -> SignInMethods:
    runtime = runtime_of(request)
    provider = runtime.single_sign_on
    return SignInMethods(
        password=runtime.authenticator.signs_tokens,
        single_sign_on=runtime.settings.oidc_display_name if provider is not None else None,
    )


@router.post("/auth/sign-in", responses={401: {"description": _REFUSED}})
async def sign_in(command: SignIn, request: Request, response: Response) -> SessionToken:
    """Sign in with a password: the answer's token for /api, the cookie for /auth/refresh."""
    runtime = runtime_of(request)
    _signing_available(runtime)
    now = _now()
    user = await runtime.users.find(command.tenant, email_of(command.email))
    if user is None or user.status != "active" or user.locked_at(now):
        await _checked(None, command.password)  # as slow as a real check
        SIGN_INS.labels("password", "refused").inc()
        raise _refused()
    if not await _checked(user, command.password):
        lockout = Lockout(
            runtime.settings.sign_in_max_failures,
            timedelta(minutes=runtime.settings.sign_in_lockout_minutes),
        )
        locked = await runtime.users.record_failure(user, now, lockout)
        if locked:
            log.warning("user_locked_out", tenant=user.tenant_id, user_id=user.id)
        SIGN_INS.labels("password", "locked_out" if locked else "refused").inc()
        raise _refused()
    await runtime.users.record_sign_in(user, now)
    SIGN_INS.labels("password", "signed_in").inc()
    return await _open_for_user(request, response, runtime, user, now)


@router.post("/auth/refresh", responses={401: {"description": "No live session"}})
async def refresh(
    request: Request,
    response: Response,
    session_secret: Annotated[str | None, Cookie(alias=COOKIE)] = None,
) -> SessionToken:
    """A new bearer token for the signed-in session (the cookie), with the user's roles now."""
    runtime = runtime_of(request)
    _signing_available(runtime)
    now = _now()
    session = await runtime.sessions.refresh(session_secret, now) if session_secret else None
    if session is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail="not signed in")
    roles = session.roles
    if session.user_id is not None:
        user = await runtime.users.get(session.tenant_id, session.user_id)
        if user.status != "active":
            await runtime.sessions.end_all_of(user.id, now)
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail="not signed in")
        roles = user.roles
    response.headers["Cache-Control"] = "no-store"
    return _token_for(runtime, session, roles)


@router.post("/auth/sign-out", status_code=204)
async def sign_out(
    request: Request,
    response: Response,
    session_secret: Annotated[str | None, Cookie(alias=COOKIE)] = None,
) -> None:
    """End the session in the cookie (a bearer token already handed out lives out its minutes)."""
    if session_secret:
        await runtime_of(request).sessions.end(session_secret, _now())
    response.delete_cookie(COOKIE, path=COOKIE_PATH)


@router.post("/auth/password")
async def set_password(command: SetPassword, request: Request, response: Response) -> SessionToken:
    """Set a password from an invitation or reset link (used once), and sign in."""
    runtime = runtime_of(request)
    _signing_available(runtime)
    now = _now()
    user = await runtime.users.link_holder(command.token, now)
    if user.status == "disabled":
        raise Unprocessable("token", "this user is disabled: ask an admin")
    # Refused here, a weak password keeps the link usable.
    user = user.with_password(await asyncio.to_thread(hash_password, user, command.password))
    await runtime.users.use_link(command.token, now)
    await runtime.users.save(user)
    await runtime.sessions.end_all_of(user.id, now)  # a reset locks out whoever had the old one
    await runtime.users.record_sign_in(user, now)
    return await _open_for_user(request, response, runtime, user, now)


# --- single sign-on ---------------------------------------------------------------


def _callback_url(request: Request, runtime: GatewayRuntime) -> str:
    return f"{public_base(request, runtime)}/auth/oidc/callback"


def _to_console(fragment: str) -> RedirectResponse:
    return RedirectResponse(f"{CONSOLE_PATH}/#/{fragment}", status_code=303)


@router.get(
    "/auth/oidc/start",
    status_code=303,
    response_class=RedirectResponse,
    responses={
        303: {"description": "To the identity provider"},
        404: {"description": "No single sign-on is set up"},
    },
)
async def single_sign_on_start(request: Request) -> Response:
    """Send the browser to the identity provider (authorization code with PKCE)."""
    runtime = runtime_of(request)
    provider = runtime.single_sign_on
    if provider is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no single sign-on is set up")
    pending = PendingSignOn.new()
    try:
        url = await provider.authorization_url(pending, _callback_url(request, runtime))
    except SignOnRefused as refused:
        log.warning("single_sign_on_refused", code=refused.code, detail=refused.detail)
        return _to_console(f"signin?error={refused.code}")
    answer = RedirectResponse(url, status_code=303)
    answer.set_cookie(
        STATE_COOKIE,
        pending.cookie(),
        max_age=STATE_SECONDS,
        path=STATE_COOKIE_PATH,
        httponly=True,
        # Lax: the provider's redirect back is a top-level navigation from its site.
        samesite="lax",
        secure=_secure(request, runtime),
    )
    return answer


@router.get(
    "/auth/oidc/callback",
    status_code=303,
    response_class=RedirectResponse,
    responses={
        303: {"description": "To the console, signed in or with the reason why not"},
        404: {"description": "No single sign-on is set up"},
    },
)
async def single_sign_on_callback(
    request: Request,
    code: Annotated[str | None, Query(max_length=4096)] = None,
    state: Annotated[str | None, Query(max_length=512)] = None,
    error: Annotated[str | None, Query(max_length=200)] = None,
    pending_cookie: Annotated[str | None, Cookie(alias=STATE_COOKIE)] = None,
) -> Response:
    """Where the provider sends the browser back: a session, then the console."""
    runtime = runtime_of(request)
    provider = runtime.single_sign_on
    if provider is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no single sign-on is set up")
    pending = PendingSignOn.from_cookie(pending_cookie)
    try:
        if error is not None:
            raise SignOnRefused("provider_error", error)
        if pending is None or state != pending.state or not code:
            raise SignOnRefused("state", "this sign-in was not started by this browser")
        _signing_available(runtime)
        claims = await provider.claims_for(code, pending, _callback_url(request, runtime))
        identity = identity_from(claims, runtime.settings)
        local = await runtime.users.find(identity.tenant_id, identity.subject)
        if local is not None and local.status == "disabled":
            raise SignOnRefused("disabled", "this user is disabled in the tenant")
    except SignOnRefused as refused:
        log.warning("single_sign_on_refused", code=refused.code, detail=refused.detail)
        SIGN_INS.labels("single_sign_on", "refused").inc()
        answer = _to_console(f"signin?error={refused.code}")
        answer.delete_cookie(STATE_COOKIE, path=STATE_COOKIE_PATH)
        return answer
    _session, secret = await runtime.sessions.open(
        tenant_id=identity.tenant_id,
        subject=identity.subject,
        roles=identity.roles,
        via="oidc",
        user_id=None,
        now=_now(),
    )
    answer = _to_console("")
    answer.delete_cookie(STATE_COOKIE, path=STATE_COOKIE_PATH)
    _set_session_cookie(request, answer, runtime, secret)
    log.info("single_sign_on", tenant=identity.tenant_id, subject=identity.subject)
    SIGN_INS.labels("single_sign_on", "signed_in").inc()
    return answer
