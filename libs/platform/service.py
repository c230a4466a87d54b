"""How a service declares itself, once, to everything that runs, routes or rebuilds it.

Each service has a ``service.py`` holding one ``ServiceDeclaration``; the composition
root (``services/bootstrap.py``) lists them. The CLI, ``make run``, the gateway's routing
table, the benchmarks and the end-to-end tests read the declarations, so adding a
service is its folder plus one line in the composition root. Nothing in ``libs/``
imports a service by name.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from libs.auth.roles import PERMISSIONS, roles_allowed

if TYPE_CHECKING:

    from libs.events.catalog import EventCatalog
    from libs.events.projection import Projection
    from libs.platform.settings import ServiceSettings

# Every permission that changes something: a caller holding none of them is read-only.
ANY_WRITE = frozenset(name for name in PERMISSIONS if not name.endswith(":read"))


def under(prefix: str) -> re.Pattern[str]:
    """The prefix itself and everything below it (``/customers``, ``/customers/7/tags``)."""
    return re.compile(re.escape(prefix) + r"(?:/.*)?")


@dataclass(frozen=True, slots=True)
class PublicRoute:
    """A family of public paths a service serves through the gateway, and who may call it.

    The gateway only pre-checks a coarse rule per method (reads need ``reads``; writes
    need one of ``writes``), never stricter than the service's own check per endpoint.
    """

    template: str  # how metrics and docs name the route (never the raw path)
    pattern: re.Pattern[str]
    reads: str = "customers:read"
    writes: frozenset[str] = ANY_WRITE
    # A catch-all under a prefix other services also serve paths below (contacts'
    # /customers/... beside the 360 view's /customers/{id}/360): tried after every
    # other route, whatever order the services are listed in.
    fallback: bool = False
    # The path carries its own credential (a one-time survey link's token): the gateway
    # forwards it without authenticating the caller, and the service checks the token.
    credential_in_path: bool = False

    def __post_init__(self) -> None:
        # A typo in a permission name fails at import, not as a route nobody may call.
        for permission in (self.reads, *self.writes):
            roles_allowed(permission)


def ops_route(service: str) -> PublicRoute:
    """``/api/v1/ops/<service>/...``: the service's ops report and its projections' rebuilds
    (``libs.platform.ops``), read by admins and managers, rebuilt by admins."""
    return PublicRoute(
        f"/api/v1/ops/{service}/...",
        under(f"/api/v1/ops/{service}"),
        reads="ops:read",
        writes=frozenset({"ops:rebuild"}),
    )


@dataclass(frozen=True, slots=True)
class ProjectionDeclaration:
    """What ``crm rebuild`` needs to fill a new generation of a read model."""

    factory: Callable[[int], Projection]
    catalog: EventCatalog


@dataclass(frozen=True, slots=True)
class ServiceDeclaration:
    name: str
    port: int  # fixed localhost port of the embedded default (``make run``)
    settings: type[ServiceSettings]
    # "module:factory" for uvicorn; a string so each worker process imports it itself.
    app: str
    routes: tuple[PublicRoute, ...] = ()
    # The catalogue module of the events it publishes ("libs.events.catalog.<name>"),
    # or None: it writes no events. ``libs.platform.relay.service_relay`` builds its
    # store and outbox relay from it.
    publishes: str | None = None
    projections: Mapping[str, ProjectionDeclaration] = field(default_factory=dict)
    # Its Alembic history (``services/<name>/migrations``), or None: no database.
    migrations: Path | None = None
    # Worker processes ``crm run`` starts at most (fewer on a machine with fewer
    # cores); more only where HTTP work is what saturates a core. WORKERS overrides.
    workers: int = 1

    @property
    def env_prefix(self) -> str:
        """``CONTACTS`` for ``CONTACTS_URL``: how other processes are told where it is."""
        return self.name.upper()
