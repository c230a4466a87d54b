"""Helpers for driving the gateway in tests: tokens, settings, a started gateway."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import httpx
from fastapi import FastAPI

from libs.auth import AuthSettings, issue_token
from services.bootstrap import SERVICES, gateway_routing
from services.gateway.app import create_app
from services.gateway.settings import Settings
from services.gateway.tests.upstreams import nowhere

AUTH = Settings().auth()  # what the gateway and the stand-in services verify with


def bearer(
    tenant: str = "acme",
    roles: Iterable[str] = ("sales",),
    subject: str = "user-1",
    *,
    auth: AuthSettings = AUTH,
    ttl_seconds: int = 300,
    now: datetime | None = None,
) -> dict[str, str]:
    token = issue_token(auth, subject, tenant, roles, ttl_seconds=ttl_seconds, now=now)
    return {"Authorization": f"Bearer {token}"}


def admin(tenant: str = "acme", subject: str = "admin-1") -> dict[str, str]:
    return bearer(tenant, ("admin",), subject)


def gateway_settings(
    database_url: str,
    contacts_url: str,
    customer360_url: str,
    pipeline_url: str | None = None,
    **overrides: Any,
) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "upstreams": {
            # Declared services these tests have no stand-in for (tickets, ...) need a URL
            # for the gateway to start; they never call their paths, and health sees them up.
            **{service.name: contacts_url for service in SERVICES if service.routes},
            "contacts": contacts_url,
            "customer360": customer360_url,
            "pipeline": pipeline_url or nowhere(),
        },
        # Well above a stand-in's answer on a busy machine (four test workers on two
        # cores), well below the slow stand-in's SLOW_SECONDS.
        "upstream_read_timeout_seconds": 3.0,
        # Off unless a test is about them: one test's requests never throttle another's.
        "rate_limit_tenant_per_second": 0,
        "rate_limit_caller_per_second": 0,
        "openapi_cache_seconds": 0,
    }
    values.update(overrides)
    return Settings(**values)


@asynccontextmanager
async def started(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan run, and a client that talks to it in-process."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
            yield client


@asynccontextmanager
async def open_gateway(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with started(create_app(settings, gateway_routing())) as client:
        yield client


async def create_key(
    gateway: httpx.AsyncClient,
    *,
    roles: Iterable[str] = ("integration",),
    name: str = "ERP sync",
    tenant: str = "acme",
) -> dict[str, Any]:
    response = await gateway.post(
        "/api/v1/api-keys", json={"name": name, "roles": list(roles)}, headers=admin(tenant)
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created
