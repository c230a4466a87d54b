"""The gateway's HTTP surface: its own endpoints, and the forwarding of everything else under /api.

Every /api request is authenticated (bearer JWT or API key), then rate limited,
then routed; the order means a stranger learns nothing about the routing table
and a refused request never reaches a service.

A router per concern: sign-in (``/auth``), users, API keys, the platform's documents,
health, and forwarding,
included in that order (forwarding last, so the gateway's own /api paths win).
"""

from fastapi import APIRouter

from services.gateway.api import documents, forwarding, health, keys, sign_in, users
from services.gateway.api.callers import admitted_caller
from services.gateway.api.conventions import CONSOLE_PATH, VERSION

__all__ = ["CONSOLE_PATH", "VERSION", "admitted_caller", "routers"]

routers: list[APIRouter] = [
    sign_in.router,
    users.router,
    keys.router,
    documents.router,
    health.router,
    forwarding.router,
]
