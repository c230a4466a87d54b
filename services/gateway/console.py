"""The web console: static files at /console/, the front door / leading there, and
/api/v1/me, which tells a frontend who its bearer is (tenant, roles, permissions).

The console is a plain client of the public API: it holds the user's token and sends
it with every /api call, so the gateway checks it like any other caller's. Nothing
here reads a service's data; these routes only serve files and describe the caller.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from fastapi import Depends, FastAPI
from pydantic import BaseModel, Field
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from libs.auth.roles import PERMISSIONS
from libs.platform.routing import ServiceRouter
from services.gateway.api import CONSOLE_PATH, admitted_caller
from services.gateway.authentication import Caller

CONSOLE_FILES = Path(__file__).with_name("console")

# Everything the console loads is its own: no inline script, no other origin, no
# framing (a framed console could be clicked through by another site).
_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

router = ServiceRouter()


class Me(BaseModel):
    subject: str
    tenant: str
    roles: list[str]
    permissions: list[str] = Field(
        description="Every permission the caller's roles grant (docs/roles.md)"
    )
    via: Literal["jwt", "api_key"]


@router.get(
    "/api/v1/me",
    tags=["session"],
    responses={
        # The platform's contract lists 403 on every secured operation; this one needs no
        # permission, so a verified caller (whatever its roles) never gets it.
        403: {"description": "Not answered today: no permission is needed to ask"},
    },
)
async def me(caller: Annotated[Caller, Depends(admitted_caller)]) -> Me:
    """The caller as the gateway sees it: a frontend shows only what these permissions
    allow (each request is still checked, whatever the frontend shows)."""
    principal = caller.principal
    return Me(
        subject=principal.subject,
        tenant=principal.tenant_id,
        roles=sorted(principal.roles),
        permissions=sorted(name for name in PERMISSIONS if principal.may(name)),
        via=principal.via,
    )


class ConsoleFiles(StaticFiles):
    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(_SECURITY_HEADERS)
        # A new release must reach every browser at once (the files are small).
        response.headers.setdefault("Cache-Control", "no-cache")
        return response


def mount_console(app: FastAPI) -> None:
    """The console's routes and files; before the gateway's forwarding, so /api/v1/me is ours."""
    app.include_router(router)
    app.mount(CONSOLE_PATH, ConsoleFiles(directory=CONSOLE_FILES, html=True), name="console")
