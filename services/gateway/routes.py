"""The routing table: which service owns which public path, and who may call it at all.

Paths are forwarded unchanged: each service serves its part of ``/api/v1`` itself,
so a request sent straight to a service and one sent through the gateway are the
same request. The first matching route wins, so the specific 360 route comes
before the contacts catch-all for ``/api/v1/customers/...``.

The permissions are names from ``libs.auth.roles.PERMISSIONS``, the matrix the
services enforce per endpoint. The gateway only pre-checks a coarse rule per
method (reads need the route's read permission; writes need at least one of its
write permissions), which is never stricter than the service's own check: a
viewer's POST stops here, a sales user's merge is refused by contacts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from libs.auth import PERMISSIONS, Principal, roles_allowed

# Methods that change nothing; everything else is a write for the coarse check.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

# Every permission that changes something: a caller holding none of them is read-only.
ANY_WRITE = frozenset(name for name in PERMISSIONS if not name.endswith(":read"))


@dataclass(frozen=True, slots=True)
class Route:
    """One family of public paths and the upstream service that owns it."""

    template: str  # how metrics and docs name the route (never the raw path)
    pattern: re.Pattern[str]
    upstream: str
    reads: str = "customers:read"
    writes: frozenset[str] = ANY_WRITE

    def __post_init__(self) -> None:
        # A typo in a permission name fails at import, not as a route nobody may call.
        for permission in (self.reads, *self.writes):
            roles_allowed(permission)

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


def _under(prefix: str) -> re.Pattern[str]:
    """The prefix itself and everything below it (``/customers``, ``/customers/7/tags``)."""
    return re.compile(re.escape(prefix) + r"(?:/.*)?")


ROUTING_TABLE: tuple[Route, ...] = (
    Route(
        "/api/v1/customers/{customer_id}/360",
        re.compile(r"/api/v1/customers/[^/]+/360/?"),
        "customer360",
    ),
    Route(
        "/api/v1/projections/customer360/...",
        _under("/api/v1/projections/customer360"),
        "customer360",
    ),
    # Import jobs: submitting and reading one both need the import permission, and
    # the metrics name them apart from the interactive customer requests.
    Route(
        "/api/v1/customers/imports/...",
        re.compile(r"/api/v1/customers/imports?(?:/.*)?"),
        "contacts",
        reads="customers:import",
        writes=frozenset({"customers:import"}),
    ),
    Route(
        "/api/v1/customers/...",
        _under("/api/v1/customers"),
        "contacts",
        writes=frozenset(
            {
                "customers:write",
                "customers:merge",
                "customers:erase",
                "customers:import",
                "interactions:write",
                "consent:write",
            }
        ),
    ),
    Route(
        "/api/v1/custom-fields/...",
        _under("/api/v1/custom-fields"),
        "contacts",
        writes=frozenset({"custom_fields:write"}),
    ),
)

UPSTREAMS: tuple[str, ...] = tuple(dict.fromkeys(route.upstream for route in ROUTING_TABLE))


def route_for(path: str) -> Route | None:
    """The route that owns ``path`` (already percent-decoded), or None.

    Paths with ``.`` or ``..`` segments match nothing: a service or a URL library
    could resolve them to a path the gateway did not check.
    """
    if any(segment in (".", "..") for segment in path.split("/")):
        return None
    return next((route for route in ROUTING_TABLE if route.matches(path)), None)
