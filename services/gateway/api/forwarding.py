"""Forwarding: every other /api path, to the service that owns it."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, Response, status

from libs.platform.errors import Forbidden, NotFound
from libs.platform.routing import ServiceRouter
from services.gateway.api.callers import forwarded_caller
from services.gateway.api.conventions import runtime_of
from services.gateway.api.keys import API_KEYS_PATH
from services.gateway.authentication import Caller

router = ServiceRouter()


@router.api_route(
    "/api/{path:path}",
    methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
    include_in_schema=False,
)
async def forward(
    request: Request, caller: Annotated[Caller | None, Depends(forwarded_caller)]
) -> Response:
    path: str = request.scope["path"]
    if path == API_KEYS_PATH or path.startswith(API_KEYS_PATH + "/"):
        raise HTTPException(status.HTTP_405_METHOD_NOT_ALLOWED, detail="method not allowed")
    route = runtime_of(request).routing.route_for(path)
    if route is None:
        raise NotFound(f"no service serves {path}")
    if caller is None:  # a path that is its own credential (forwarded_caller checked)
        return await runtime_of(request).proxy.forward(request, route, None)
    if not route.permits(caller.principal, request.method):
        raise Forbidden(
            f"{request.method} {path} needs one of the roles: "
            + ", ".join(route.roles_for(request.method))
        )
    return await runtime_of(request).proxy.forward(request, route, caller)
