"""The tickets service as the platform sees it: where it runs, what it serves, how it publishes."""

from __future__ import annotations

import re
from pathlib import Path

from libs.platform.service import (
    ProjectionDeclaration,
    PublicRoute,
    ServiceDeclaration,
    ops_route,
    under,
)
from services.tickets.read_model.known_customers import catalog, projection_factory
from services.tickets.settings import Settings

TICKET_WORK = frozenset({"tickets:write"})



SERVICE = ServiceDeclaration(
    name="tickets",
    port=8003,
    settings=Settings,
    app="services.tickets.app:create_app",
    routes=(
        PublicRoute(
            "/api/v1/tickets/...",
            under("/api/v1/tickets"),
            reads="tickets:read",
            writes=TICKET_WORK,
        ),
        PublicRoute(
            "/api/v1/customers/{customer_id}/tickets",
            re.compile(r"/api/v1/customers/[^/]+/tickets/?"),
            reads="tickets:read",
            writes=TICKET_WORK,
        ),
        PublicRoute(
            "/api/v1/customers/{customer_id}/nps-survey",
            re.compile(r"/api/v1/customers/[^/]+/nps-survey/?"),
            reads="tickets:read",
            writes=TICKET_WORK,
        ),
        PublicRoute(
            "/api/v1/service-stats",
            re.compile(r"/api/v1/service-stats/?"),
            reads="tickets:read",
            writes=TICKET_WORK,
        ),
        PublicRoute(
            "/api/v1/sla-policies/...",
            under("/api/v1/sla-policies"),
            reads="tickets:read",
            writes=frozenset({"sla:manage"}),
        ),
        PublicRoute(
            "/api/v1/business-calendars/...",
            under("/api/v1/business-calendars"),
            reads="tickets:read",
            writes=frozenset({"sla:manage"}),
        ),
        PublicRoute(
            "/api/v1/escalation-rules",
            re.compile(r"/api/v1/escalation-rules/?"),
            reads="tickets:read",
            writes=frozenset({"sla:manage"}),
        ),
        PublicRoute(
            "/api/v1/dispatch-rules",
            re.compile(r"/api/v1/dispatch-rules/?"),
            reads="tickets:read",
            writes=frozenset({"sla:manage"}),
        ),
        PublicRoute(
            "/api/v1/surveys/{token}",
            re.compile(r"/api/v1/surveys/[A-Za-z0-9_-]{20,100}(?:/answer)?/?"),
            reads="tickets:read",
            writes=TICKET_WORK,
            credential_in_path=True,  # the one-time link's token; no login
        ),
        ops_route("tickets"),
    ),
    publishes="libs.events.catalog.tickets",
    migrations=Path(__file__).with_name("migrations"),
    projections={"tickets_customers": ProjectionDeclaration(projection_factory, catalog)},
)
