"""The tenant's console users, administered by its admin: ``/api/v1/users``.

Inviting answers a one-time link to set a password (the admin passes it on); a reset
answers a new one and ends the user's sessions; disabling ends them too. An admin
cannot disable themself or take away their own admin role (409), so a tenant always
keeps someone who can administer it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from fastapi import Depends, Request, Response
from pydantic import BaseModel, Field

from libs.auth import Principal, Role
from libs.platform.errors import Conflict
from libs.platform.routing import ServiceRouter
from services.gateway.api.callers import admin_in_person
from services.gateway.api.conventions import body_of, documented_body, runtime_of, set_password_url
from services.gateway.api.sign_in import public_base
from services.gateway.open_resources import GatewayRuntime
from services.gateway.users import User, invite, link_for

USERS_PATH = "/api/v1/users"
USERS_PERMISSION = "users:manage"

router = ServiceRouter(tags=["users"])


Administrator = Annotated[Principal, Depends(admin_in_person(USERS_PERMISSION, "users"))]


class InviteUser(BaseModel):
    email: str = Field(min_length=3, max_length=320, examples=["zhang.wei@acme.cn"])
    name: str = Field(min_length=1, max_length=200, examples=["张伟"])
    roles: list[Role] = Field(min_length=1, examples=[["sales"]])


class ChangeUser(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    roles: list[Role] | None = Field(default=None, min_length=1)


class UserView(BaseModel):
    id: str
    email: str
    name: str
    roles: list[str]
    status: Literal["invited", "active", "disabled"]
    locked_until: datetime | None
    last_signed_in_at: datetime | None
    created_at: datetime
    created_by: str

    @classmethod
    def of(cls, user: User) -> UserView:
        now = datetime.now(UTC)
        return cls(
            id=user.id,
            email=user.email,
            name=user.name,
            roles=sorted(user.roles),
            status=user.status,
            locked_until=user.locked_until if user.locked_at(now) else None,
            last_signed_in_at=user.last_signed_in_at,
            created_at=user.created_at,
            created_by=user.created_by,
        )


class UserLink(BaseModel):
    user: UserView
    purpose: Literal["invitation", "reset"]
    url: str = Field(description="The one-time link to set a password: shown this once")
    expires_at: datetime


class UserList(BaseModel):
    items: list[UserView]


async def _hand_out(request: Request, response: Response, user: User) -> UserLink:
    runtime = runtime_of(request)
    settings = runtime.settings
    link = link_for(
        user,
        datetime.now(UTC),
        invitation=timedelta(days=settings.invitation_days),
        reset=timedelta(hours=settings.password_reset_hours),
    )
    await runtime.users.add_link(link)
    response.headers["Cache-Control"] = "no-store"  # the link is a credential
    return UserLink(
        user=UserView.of(user),
        purpose=link.purpose,
        url=set_password_url(public_base(request, runtime), link.secret),
        expires_at=link.expires_at,
    )


async def _own(runtime: GatewayRuntime, admin: Principal, user_id: str) -> User:
    return await runtime.users.get(admin.tenant_id, user_id)


@router.post(
    USERS_PATH,
    status_code=201,
    responses={
        409: {"description": "Already a user of this tenant"},
        422: {"description": "A field is invalid (errors)"},
    },
    openapi_extra=documented_body(InviteUser),
)
async def invite_user(request: Request, response: Response, admin: Administrator) -> UserLink:
    """Invite someone to the console: the answer's link lets them set a password."""
    command = await body_of(request, InviteUser)
    user = invite(
        tenant_id=admin.tenant_id,
        email=command.email,
        name=command.name,
        roles=[role.value for role in command.roles],
        by=admin.subject,
        now=datetime.now(UTC),
    )
    await runtime_of(request).users.add(user)
    response.headers["Location"] = f"{USERS_PATH}/{user.id}"
    return await _hand_out(request, response, user)


@router.get(USERS_PATH)
async def list_users(request: Request, admin: Administrator) -> UserList:
    users = await runtime_of(request).users.list_for_tenant(admin.tenant_id)
    return UserList(items=[UserView.of(user) for user in users])


@router.get(USERS_PATH + "/{user_id}")
async def get_user(user_id: str, request: Request, admin: Administrator) -> UserView:
    return UserView.of(await _own(runtime_of(request), admin, user_id))


@router.patch(
    USERS_PATH + "/{user_id}",
    responses={409: {"description": "An admin taking away their own admin role"}},
    openapi_extra=documented_body(ChangeUser),
)
async def change_user(user_id: str, request: Request, admin: Administrator) -> UserView:
    """Rename a user or change their roles (in effect at their next token, within minutes)."""
    command = await body_of(request, ChangeUser)
    runtime = runtime_of(request)
    user = await _own(runtime, admin, user_id)
    roles = [role.value for role in command.roles] if command.roles is not None else None
    changed = user.changed(name=command.name, roles=roles)
    if user.subject == admin.subject and Role.ADMIN.value not in changed.roles:
        raise Conflict("an admin cannot take away their own admin role")
    return UserView.of(await runtime.users.save(changed))


@router.post(USERS_PATH + "/{user_id}/disable", responses={409: {"description": "Oneself"}})
async def disable_user(user_id: str, request: Request, admin: Administrator) -> UserView:
    """No more sign-in; the user's sessions end at once (a token handed out lives its minutes)."""
    runtime = runtime_of(request)
    user = await _own(runtime, admin, user_id)
    if user.subject == admin.subject:
        raise Conflict("an admin cannot disable themself")
    disabled = await runtime.users.save(user.with_status("disabled"))
    await runtime.sessions.end_all_of(user.id, datetime.now(UTC))
    return UserView.of(disabled)


@router.post(USERS_PATH + "/{user_id}/enable")
async def enable_user(user_id: str, request: Request, admin: Administrator) -> UserView:
    runtime = runtime_of(request)
    user = await _own(runtime, admin, user_id)
    status: Literal["invited", "active"] = "active" if user.password_hash else "invited"
    return UserView.of(await runtime.users.save(user.with_status(status)))


@router.post(USERS_PATH + "/{user_id}/password-reset", responses={409: {"description": "Disabled"}})
async def reset_password(
    user_id: str, request: Request, response: Response, admin: Administrator
) -> UserLink:
    """A new one-time link to set a password (an invited user's invitation, again)."""
    runtime = runtime_of(request)
    user = await _own(runtime, admin, user_id)
    if user.status == "disabled":
        raise Conflict("enable the user first")
    return await _hand_out(request, response, user)
