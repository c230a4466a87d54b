"""The loyalty service as the platform sees it: where it runs, what it serves, how it publishes."""

from __future__ import annotations

import re
from pathlib import Path

from libs.platform.service import PublicRoute, ServiceDeclaration, ops_route, under
from services.loyalty.settings import Settings

SERVICE = ServiceDeclaration(
    name="loyalty",
    port=8004,
    settings=Settings,
    app="services.loyalty.app:create_app",
    routes=(
        PublicRoute(
            "/api/v1/customers/{customer_id}/loyalty/...",
            re.compile(r"/api/v1/customers/[^/]+/loyalty(?:/.*)?"),
            writes=frozenset({"loyalty:redeem", "loyalty:adjust", "loyalty:check_in"}),
        ),
        PublicRoute(
            "/api/v1/loyalty/...",
            under("/api/v1/loyalty"),
            writes=frozenset({"loyalty:manage"}),
        ),
        ops_route("loyalty"),
    ),
    publishes="libs.events.catalog.loyalty",
    migrations=Path(__file__).with_name("migrations"),
)
