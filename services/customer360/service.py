"""The customer 360 projector as the platform sees it: its port, its routes, its read model."""

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
from services.customer360.domain.sources import catalog
from services.customer360.read_model.writer import projection_factory
from services.customer360.settings import Settings

SERVICE = ServiceDeclaration(
    name="customer360",
    port=8006,
    settings=Settings,
    app="services.customer360.app:create_app",
    routes=(
        PublicRoute(
            "/api/v1/customers/{customer_id}/360", re.compile(r"/api/v1/customers/[^/]+/360/?")
        ),
        PublicRoute(
            "/api/v1/projections/customer360/...", under("/api/v1/projections/customer360")
        ),
        ops_route("customer360"),
    ),
    projections={"customer360": ProjectionDeclaration(projection_factory, catalog)},
    # One process: its projector is single-active, and the view's reads are cheap.
    migrations=Path(__file__).with_name("migrations"),
)
