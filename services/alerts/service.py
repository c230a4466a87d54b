"""The alerts service as the platform sees it: where it runs, what it serves, how it publishes."""

from __future__ import annotations

import re
from pathlib import Path

from libs.platform.service import PublicRoute, ServiceDeclaration, ops_route, under
from services.alerts.settings import Settings

SERVICE = ServiceDeclaration(
    name="alerts",
    port=8005,
    settings=Settings,
    app="services.alerts.app:create_app",
    routes=(
        PublicRoute(
            "/api/v1/churn/...",
            under("/api/v1/churn"),
            # Rules and backtests are the managers'; acting on an alert is everyone's work.
            writes=frozenset({"churn:configure", "customers:write"}),
        ),
        PublicRoute(
            "/api/v1/reminders",
            re.compile(r"/api/v1/reminders/?"),
            writes=frozenset({"customers:write"}),
        ),
        # Below contacts' /customers/... catch-all, which is declared a fallback.
        PublicRoute(
            "/api/v1/customers/{customer_id}/churn-risk",
            re.compile(r"/api/v1/customers/[^/]+/churn-risk/?"),
            writes=frozenset({"churn:configure"}),
        ),
        PublicRoute(
            "/api/v1/webhooks/...",
            under("/api/v1/webhooks"),
            # Subscriptions send the tenant's events out of the platform: managers' call.
            reads="webhooks:manage",
            writes=frozenset({"webhooks:manage"}),
        ),
        ops_route("alerts"),
    ),
    publishes="libs.events.catalog.alerts",
    migrations=Path(__file__).with_name("migrations"),
)
