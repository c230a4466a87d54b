"""The contacts service as the platform sees it: where it runs, what it serves, how it publishes."""

from __future__ import annotations

import re
from pathlib import Path

from libs.platform.service import PublicRoute, ServiceDeclaration, ops_route, under
from services.contacts.settings import Settings

SERVICE = ServiceDeclaration(
    name="contacts",
    port=8001,
    settings=Settings,
    app="services.contacts.app:create_app",
    routes=(
        # Import jobs: submitting and reading one both need the import permission, and
        # the metrics name them apart from the interactive customer requests.
        PublicRoute(
            "/api/v1/customers/imports/...",
            re.compile(r"/api/v1/customers/imports?(?:/.*)?"),
            reads="customers:import",
            writes=frozenset({"customers:import"}),
        ),
        PublicRoute(
            "/api/v1/customers/...",
            under("/api/v1/customers"),
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
            fallback=True,  # other services serve paths below a customer (/360, /orders)
        ),
        PublicRoute(
            "/api/v1/custom-fields/...",
            under("/api/v1/custom-fields"),
            writes=frozenset({"custom_fields:write"}),
        ),
        ops_route("contacts"),
    ),
    publishes="libs.events.catalog.contacts",
    migrations=Path(__file__).with_name("migrations"),
    workers=2,
)
