"""The pipeline service as the platform sees it: where it runs, what it serves, how it publishes."""

from __future__ import annotations

import re
from pathlib import Path

from libs.platform.service import PublicRoute, ServiceDeclaration, ops_route, under
from services.pipeline.settings import Settings

SERVICE = ServiceDeclaration(
    name="pipeline",
    port=8002,
    settings=Settings,
    app="services.pipeline.app:create_app",
    routes=(
        PublicRoute(
            "/api/v1/orders/...",
            under("/api/v1/orders"),
            writes=frozenset({"orders:write", "orders:refund", "orders:import"}),
        ),
        PublicRoute(
            "/api/v1/deals/...",
            under("/api/v1/deals"),
            writes=frozenset({"deals:write"}),
        ),
        PublicRoute(
            "/api/v1/deal-stages",
            under("/api/v1/deal-stages"),
            writes=frozenset({"pipeline:configure"}),
        ),
        PublicRoute("/api/v1/funnel", under("/api/v1/funnel"), writes=frozenset()),
        PublicRoute(
            "/api/v1/leads/...",
            under("/api/v1/leads"),
            writes=frozenset({"leads:write", "customers:erase"}),
        ),
        PublicRoute(
            "/api/v1/assignment-rules",
            under("/api/v1/assignment-rules"),
            writes=frozenset({"pipeline:configure"}),
        ),
        PublicRoute("/api/v1/tasks/...", under("/api/v1/tasks"), writes=frozenset({"tasks:write"})),
        PublicRoute(
            "/api/v1/contracts/...",
            under("/api/v1/contracts"),
            writes=frozenset({"contracts:write"}),
        ),
        # Below contacts' catch-all (declared fallback), so these win.
        PublicRoute(
            "/api/v1/customers/{customer_id}/orders",
            re.compile(r"/api/v1/customers/[^/]+/orders/?"),
            writes=frozenset(),
        ),
        PublicRoute(
            "/api/v1/customers/{customer_id}/purchase-figures",
            re.compile(r"/api/v1/customers/[^/]+/purchase-figures/?"),
            writes=frozenset(),
        ),
        PublicRoute(
            "/api/v1/customers/{customer_id}/contracts",
            re.compile(r"/api/v1/customers/[^/]+/contracts/?"),
            writes=frozenset(),
        ),
        ops_route("pipeline"),
    ),
    publishes="libs.events.catalog.pipeline",
    migrations=Path(__file__).with_name("migrations"),
)
