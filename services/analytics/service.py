"""The analytics service as the platform sees it: where it runs, what it serves, how it
publishes, and the projection ``crm rebuild analytics`` fills again."""

from __future__ import annotations

from pathlib import Path

from libs.platform.service import (
    ProjectionDeclaration,
    PublicRoute,
    ServiceDeclaration,
    ops_route,
    under,
)
from services.analytics.domain.sources import SOURCES
from services.analytics.read_model.projection import projection_factory
from services.analytics.settings import Settings

SERVICE = ServiceDeclaration(
    name="analytics",
    port=8007,
    settings=Settings,
    app="services.analytics.app:create_app",
    routes=(
        PublicRoute(
            "/api/v1/analytics/...",
            under("/api/v1/analytics"),
            # Saving a segment is marketing's too; the churn definitions are team leads'.
            writes=frozenset({"segments:write", "churn:configure"}),
        ),
        ops_route("analytics"),
    ),
    publishes="libs.events.catalog.analytics",
    projections={"analytics": ProjectionDeclaration(projection_factory, SOURCES)},
    migrations=Path(__file__).with_name("migrations"),
)
