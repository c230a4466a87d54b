"""One OpenAPI document for the platform, and a health report that names each service."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import httpx

from libs.events.catalog import published_catalogs as catalogs
from libs.platform.broker import free_port
from libs.platform.db import create_engine
from services.bootstrap import gateway_routing
from services.gateway.app import create_app
from services.gateway.open_resources import GatewayRuntime
from services.gateway.openapi import UpstreamDocument, merge_documents
from services.gateway.settings import Settings
from services.gateway.tests.support import gateway_settings, open_gateway, started
from services.gateway.tests.upstreams import UpstreamServer, customer360_app, nowhere

# --- the merged document ---------------------------------------------------------------


async def test_the_platform_document_holds_every_services_paths_and_the_gateways(
    gateway: httpx.AsyncClient,
) -> None:
    response = await gateway.get("/openapi.json")

    assert response.status_code == 200
    document = response.json()
    paths = document["paths"]
    assert "/api/v1/customers" in paths
    assert "/api/v1/customers/import" in paths
    assert "/api/v1/custom-fields/{name}" in paths
    assert "/api/v1/customers/{customer_id}/360" in paths
    assert "/api/v1/api-keys" in paths
    # The services' own endpoints stay out of the platform's public document.
    assert "/healthz" not in paths and "/openapi.json" not in paths
    assert paths["/api/v1/customers/{customer_id}/360"]["get"]["x-service"] == "customer360"
    assert paths["/api/v1/orders/{order_id}"]["get"]["x-service"] == "pipeline"
    assert paths["/api/v1/customers"]["post"]["security"] == [{"HTTPBearer": []}, {"ApiKey": []}]
    assert set(document["components"]["securitySchemes"]) == {"HTTPBearer", "ApiKey"}
    assert document["x-upstreams"]["contacts"]["status"] == "available"
    assert document["x-upstreams"]["customer360"]["status"] == "available"


async def test_references_in_the_merged_document_all_resolve(gateway: httpx.AsyncClient) -> None:
    document = (await gateway.get("/openapi.json")).json()

    for reference in references(document):
        section, name = reference.removeprefix("#/components/").split("/")
        assert name in document["components"][section], reference


async def test_a_service_that_is_down_is_listed_as_unavailable(
    pg_url: str, contacts_service: UpstreamServer
) -> None:
    settings = gateway_settings(pg_url, contacts_service.url, nowhere())
    async with open_gateway(settings) as gateway:
        response = await gateway.get("/openapi.json")

    assert response.status_code == 200
    document = response.json()
    assert document["x-upstreams"]["customer360"]["status"] == "unavailable"
    assert "ConnectError" in document["x-upstreams"]["customer360"]["error"]
    assert "/api/v1/customers/{customer_id}/360" not in document["paths"]
    assert "/api/v1/customers" in document["paths"]
    assert "customer360" in document["info"]["description"]


async def test_swagger_ui_is_served_for_the_platform_document(gateway: httpx.AsyncClient) -> None:
    response = await gateway.get("/docs")

    assert response.status_code == 200
    assert "/openapi.json" in response.text
    # Offline too: every script and stylesheet comes from the gateway itself.
    assert "cdn" not in response.text.lower()
    assets = re.findall(r'(?:src|href)="([^"]+\.(?:js|css))"', response.text)
    assert len(assets) == 2
    for asset in assets:
        loaded = await gateway.get(asset)
        assert loaded.status_code == 200 and len(loaded.content) > 10_000, asset


async def test_redoc_is_served_without_a_cdn(gateway: httpx.AsyncClient) -> None:
    response = await gateway.get("/redoc")

    assert response.status_code == 200
    assert "cdn" not in response.text.lower() and "fonts.googleapis" not in response.text
    (script,) = re.findall(r'src="([^"]+\.js)"', response.text)
    assert (await gateway.get(script)).status_code == 200


async def test_the_front_door_gives_a_client_the_map_of_the_docs(
    gateway: httpx.AsyncClient,
) -> None:
    client = await gateway.get("/")

    assert client.status_code == 200
    assert client.json()["docs"] == "/docs" and client.json()["openapi"] == "/openapi.json"


def test_clashing_components_are_renamed_per_service_and_references_follow() -> None:
    gateway: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "CRM platform API", "version": "1"},
        "paths": {},
        "components": {"schemas": {"Customer": {"type": "object", "title": "gateway's"}}},
    }
    contacts: dict[str, Any] = {
        "paths": {
            "/api/v1/customers": {
                "get": {
                    "operationId": "list",
                    "responses": {
                        "200": {
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/Customer"}
                                }
                            }
                        }
                    },
                }
            },
            "/healthz": {"get": {"operationId": "healthz"}},
        },
        "components": {
            "schemas": {
                "Customer": {"type": "object", "title": "contacts'"},
                "HTTPValidationError": {"type": "object"},
            }
        },
    }
    customer360: dict[str, Any] = {
        "paths": {
            "/api/v1/customers/{customer_id}/360": {"get": {"operationId": "list"}},
        },
        "components": {"schemas": {"HTTPValidationError": {"type": "object"}}},
    }

    merged = merge_documents(
        gateway,
        [
            UpstreamDocument("contacts", "available", contacts, None, 0.0),
            UpstreamDocument("customer360", "available", customer360, None, 0.0),
        ],
        gateway_routing(),
    )

    schemas = merged["components"]["schemas"]
    assert schemas["Customer"]["title"] == "gateway's"
    assert schemas["contacts_Customer"]["title"] == "contacts'"
    assert set(schemas) == {"Customer", "contacts_Customer", "HTTPValidationError", "Problem"}
    operation = merged["paths"]["/api/v1/customers"]["get"]
    # Its own schema, renamed, and the problem shape the gateway documents for its errors.
    assert set(references(operation)) == {
        "#/components/schemas/contacts_Customer",
        "#/components/schemas/Problem",
    }
    assert "/healthz" not in merged["paths"]
    # Operation ids stay unique across services.
    assert merged["paths"]["/api/v1/customers/{customer_id}/360"]["get"]["operationId"] == (
        "customer360_list"
    )
    assert gateway["components"]["schemas"] == {
        "Customer": {"type": "object", "title": "gateway's"}
    }


def references(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [ref for value in node.values() for ref in references(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in references(value)]
    return []


# --- health -------------------------------------------------------------------------


async def test_health_reports_every_service_up_with_its_latency(gateway: httpx.AsyncClient) -> None:
    response = await gateway.get("/healthz")

    assert response.status_code == 200
    report = response.json()
    assert report["status"] == "ok"
    assert report["service"] == "gateway"
    assert report["database"]["status"] == "up"
    for name in ("contacts", "customer360", "pipeline"):
        assert report["upstreams"][name]["status"] == "up"
        assert report["upstreams"][name]["latency_ms"] >= 0


async def test_a_service_that_is_down_degrades_the_report_but_not_the_gateway(
    pg_url: str, contacts_service: UpstreamServer
) -> None:
    settings = gateway_settings(pg_url, contacts_service.url, nowhere())
    async with open_gateway(settings) as gateway:
        response = await gateway.get("/healthz")

    assert response.status_code == 200
    report = response.json()
    assert report["status"] == "degraded"
    assert report["upstreams"]["contacts"]["status"] == "up"
    assert report["upstreams"]["customer360"] == {
        "url": settings.upstreams["customer360"],
        "status": "down",
        "detail": "ConnectError",
    }


async def test_the_gateway_is_ready_once_every_service_behind_it_was_and_stays_so(
    pg_url: str, contacts_service: UpstreamServer, pipeline_service: UpstreamServer
) -> None:
    customer360 = UpstreamServer(customer360_app())
    # The stand-ins answer every other service's probe: on a loaded machine a second is
    # not always enough for all of them at once (customer360, not listening, is refused
    # at once whatever the timeout).
    settings = gateway_settings(
        pg_url,
        contacts_service.url,
        customer360.url,
        pipeline_service.url,
        upstream_probe_timeout_seconds=5.0,
    )
    async with open_gateway(settings) as gateway:
        live = await gateway.get("/livez")
        # customer360 is still starting: a request now could meet a 503.
        starting = await gateway.get("/readyz")
        customer360.start()
        try:
            ready = await gateway.get("/readyz")
        finally:
            customer360.stop()
        # Later, one service down is that service's outage, not the gateway's.
        one_down = await gateway.get("/readyz")

    assert live.status_code == 200
    assert starting.status_code == 503, starting.text
    assert starting.json()["waiting_for"] == ["customer360"]
    assert starting.json()["upstreams"]["contacts"]["status"] == "ready"
    assert ready.status_code == 200, ready.text
    assert ready.json()["database"]["status"] == "up"
    assert one_down.status_code == 200
    assert one_down.json()["upstreams"]["customer360"]["status"] == "down"
    assert "waiting_for" not in one_down.json()


async def test_the_gateway_is_failing_when_its_own_database_is_gone(settings: Settings) -> None:
    app = create_app(settings, gateway_routing())
    async with started(app) as gateway:
        runtime: GatewayRuntime = app.state.gateway
        healthy_engine = runtime.engine
        # The gateway's database goes away under the running gateway.
        runtime.engine = create_engine(f"postgresql://postgres@127.0.0.1:{free_port()}/gone")
        try:
            response = await gateway.get("/healthz")
        finally:
            await runtime.engine.dispose()
            runtime.engine = healthy_engine

    assert response.status_code == 503
    assert response.json()["status"] == "failing"
    assert response.json()["database"]["status"] == "down"


async def test_every_event_schema_is_served_where_the_events_name_it(
    gateway: httpx.AsyncClient,
) -> None:
    checked = 0
    for catalog in catalogs().values():
        for type_name in catalog.types:
            url = catalog.schema_url(type_name)
            assert url is not None
            response = await gateway.get(urlsplit(url).path)
            assert response.status_code == 200, url
            assert response.json() == catalog.json_schema(type_name)
            checked += 1
    assert checked > 50
    assert (await gateway.get("/events/crm.nothing.v1.json")).status_code == 404
    asyncapi = await gateway.get("/events/asyncapi.json")
    assert asyncapi.status_code == 200 and asyncapi.json()["asyncapi"].startswith("3.")


async def test_with_a_schema_base_url_each_schema_is_identified_by_the_url_events_name(
    settings: Settings,
) -> None:
    configured = settings.model_copy(
        update={"event_schema_base_url": "https://crm.example.com/events/"}
    )
    async with open_gateway(configured) as gateway:
        response = await gateway.get("/events/crm.contacts.customer_registered.v1.json")

    assert response.status_code == 200
    assert response.json()["$id"] == (
        "https://crm.example.com/events/crm.contacts.customer_registered.v1.json"
    )
