"""The routing table: which service owns which public path, and who may call it at all.

Paths are forwarded unchanged: each service serves its part of ``/api/v1`` itself,
so a request sent straight to a service and one sent through the gateway are the
same request. Each service declares its public routes (``libs.platform.service``);
the composition root hands them to the gateway as a ``RoutingTable``. The first
matching route wins, and a service's catch-all (``fallback``) comes after every
specific route, so the 360 view's ``/api/v1/customers/{id}/360`` is not taken by
contacts' ``/api/v1/customers/...``.

The permissions are names from ``libs.auth.roles.PERMISSIONS``, the matrix the
services enforce per endpoint. The gateway only pre-checks a coarse rule per
method (reads need the route's read permission; writes need at least one of its
write permissions), which is never stricter than the service's own check: a
viewer's POST stops here, a sales user's merge is refused by contacts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from libs.auth import Principal, roles_allowed
from libs.platform.service import ANY_WRITE, PublicRoute

# Methods that change nothing; everything else is a write for the coarse check.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

__all__ = ["ANY_WRITE", "SAFE_METHODS", "Route", "RoutingTable"]


@dataclass(frozen=True, slots=True)
class Route:
    """One family of public paths and the upstream service that owns it."""

    template: str
    pattern: re.Pattern[str]
    upstream: str
    reads: str = "customers:read"
    writes: frozenset[str] = ANY_WRITE
    # Forwarded without authenticating the caller: the path holds its own credential.
    credential_in_path: bool = False

    @classmethod
    def of(cls, upstream: str, route: PublicRoute) -> Route:
        return cls(
            route.template,
            route.pattern,
            upstream,
            route.reads,
            route.writes,
            route.credential_in_path,
        )

    def matches(self, path: str) -> bool:
        return self.pattern.fullmatch(path) is not None

    def permissions_for(self, method: str) -> frozenset[str]:
        """Any one of these permissions lets a caller use ``method`` on this route."""
        return frozenset({self.reads}) if method.upper() in SAFE_METHODS else self.writes

    def permits(self, principal: Principal, method: str) -> bool:
        return any(principal.may(permission) for permission in self.permissions_for(method))

    def roles_for(self, method: str) -> list[str]:
        """The roles that pass the coarse check, for the 403 message."""
        roles: set[str] = set()
        for permission in self.permissions_for(method):
            roles.update(roles_allowed(permission))
        return sorted(roles)


class RoutingTable:
    def __init__(self, routes: Iterable[Route]) -> None:
        self.routes: tuple[Route, ...] = tuple(routes)
        self.upstreams: tuple[str, ...] = tuple(dict.fromkeys(r.upstream for r in self.routes))

    @classmethod
    def declared(cls, services: Sequence[tuple[str, Sequence[PublicRoute]]]) -> RoutingTable:
        """Every service's declared routes, specific ones first, catch-alls last."""
        declared = [(r.fallback, Route.of(name, r)) for name, routes in services for r in routes]
        return cls(
            [route for fallback, route in declared if not fallback]
            + [route for fallback, route in declared if fallback]
        )

    def route_for(self, path: str) -> Route | None:
        """The route that owns ``path`` (already percent-decoded), or None.

        Paths with ``.`` or ``..`` segments match nothing: a service or a URL library
        could resolve them to a path the gateway did not check.
        """
        if any(segment in (".", "..") for segment in path.split("/")):
            return None
        return next((route for route in self.routes if route.matches(path)), None)
