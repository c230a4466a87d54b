from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from services.gateway.settings import Settings
from services.gateway.tests.support import gateway_settings, open_gateway
from services.gateway.tests.upstreams import (
    UpstreamServer,
    contacts_app,
    customer360_app,
    pipeline_app,
)
from testing.fixtures import MigratedTemplates

MIGRATIONS = Path(__file__).parents[1] / "migrations"


@pytest.fixture(scope="session")
def contacts_service() -> Iterator[UpstreamServer]:
    server = UpstreamServer(contacts_app()).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def customer360_service() -> Iterator[UpstreamServer]:
    server = UpstreamServer(customer360_app()).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def pipeline_service() -> Iterator[UpstreamServer]:
    server = UpstreamServer(pipeline_app()).start()
    yield server
    server.stop()


@pytest.fixture
async def service_pg_url(migrated_templates: MigratedTemplates) -> AsyncIterator[str]:
    """The gateway's database, at its schema already: a copy of one migrated once."""
    async with migrated_templates.copy(MIGRATIONS) as url:
        yield url


@pytest.fixture
def settings(
    service_pg_url: str,
    contacts_service: UpstreamServer,
    customer360_service: UpstreamServer,
    pipeline_service: UpstreamServer,
) -> Settings:
    return gateway_settings(
        service_pg_url, contacts_service.url, customer360_service.url, pipeline_service.url
    )


@pytest_asyncio.fixture
async def gateway(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with open_gateway(settings) as client:
        yield client
