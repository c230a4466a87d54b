"""The gateway as the platform sees it: the front door, routing to every other service.

Its app factory lives in the composition root (``services.bootstrap``), which hands
it the routing table built from every service's declared routes.
"""

from __future__ import annotations

from pathlib import Path

from libs.platform.service import ServiceDeclaration
from services.gateway.settings import Settings

SERVICE = ServiceDeclaration(
    name="gateway",
    port=8000,
    settings=Settings,
    app="services.bootstrap:create_gateway",
    migrations=Path(__file__).with_name("migrations"),
    workers=2,
)
