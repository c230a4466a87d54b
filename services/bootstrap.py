"""The composition root: the platform's services, and the one place that wires them.

A service declares itself in its ``service.py``; listing it below is all it takes for
``crm run``, ``crm serve``, ``crm republish``/``rebuild``, the gateway's routing table,
the benchmarks and the end-to-end tests to know it. Services never import each other;
only this module sees them all.
"""

from __future__ import annotations

import os
from importlib import import_module

from fastapi import FastAPI

from libs.platform.cli import build_cli
from libs.platform.service import ServiceDeclaration
from services.gateway.routes import RoutingTable

# One line per service: its folder's name (services/<name>/service.py declares it).
SERVICES: tuple[ServiceDeclaration, ...] = tuple(
    import_module(f"services.{name}.service").SERVICE
    for name in (
        "gateway",
        "contacts",
        "pipeline",
        "tickets",
        "loyalty",
        "alerts",
        "customer360",
        "analytics",
    )
)


def create_gateway() -> FastAPI:
    """The gateway with every declared service's routes, each at ``<NAME>_URL``
    (else its ``make run`` port), unless UPSTREAMS names it already."""
    from services.gateway.app import create_app
    from services.gateway.settings import Settings

    settings = Settings()
    defaults = {
        service.name: os.environ.get(
            f"{service.env_prefix}_URL", f"http://127.0.0.1:{service.port}"
        )
        for service in SERVICES
        if service.routes
    }
    settings.upstreams = {**defaults, **settings.upstreams}
    return create_app(settings, gateway_routing())


def gateway_routing() -> RoutingTable:
    """Every declared service's public routes, as the gateway matches them."""
    return RoutingTable.declared([(s.name, s.routes) for s in SERVICES if s.routes])


cli = build_cli(SERVICES)
cli.add_typer(import_module("services.gateway.commands").users, name="users")

if __name__ == "__main__":
    cli()
