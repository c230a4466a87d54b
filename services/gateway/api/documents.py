"""The platform's documents: the front door, the OpenAPI of every service behind the
gateway, the AsyncAPI of every topic and each event's JSON Schema."""

from __future__ import annotations

import functools
from typing import Any

from fastapi import Request, Response, status
from fastapi.responses import JSONResponse, RedirectResponse

from libs.platform.errors import NotFound
from libs.platform.routing import ServiceRouter
from services.gateway.api.conventions import CONSOLE_PATH, VERSION, runtime_of

router = ServiceRouter()


@functools.cache
def _event_contracts() -> tuple[dict[str, Any], dict[str, Any]]:
    """(JSON Schema by event type, the AsyncAPI document), built once from the catalogs."""
    from libs.events.asyncapi import asyncapi_document
    from libs.events.catalog import published_catalogs as catalogs

    everything = catalogs()
    schemas = {
        type_name: schema
        for catalog in everything.values()
        for type_name, schema in catalog.json_schemas().items()
    }
    return schemas, asyncapi_document(everything)


@router.get("/events/asyncapi.json", include_in_schema=False)
async def events_asyncapi() -> JSONResponse:
    """The AsyncAPI document of every topic the platform publishes."""
    return JSONResponse(_event_contracts()[1])


@router.get("/events/{type_name}.json", include_in_schema=False)
async def event_schema(type_name: str, request: Request) -> JSONResponse:
    """The JSON Schema an event's ``dataschema`` names (``<base>/events/<type>.json``):
    point the schema host at the gateway and every event's URL resolves."""
    schema = _event_contracts()[0].get(type_name)
    if schema is None:
        raise NotFound(f"no event type {type_name}")
    settings = runtime_of(request).settings
    # The schema's $id is the URL events name for it, where it is served from.
    schema_id = settings.event_schema_url(type_name, schema.get("$id"))
    return JSONResponse({**schema, "$id": schema_id}, media_type="application/schema+json")


@router.get("/", include_in_schema=False, response_model=None)
async def front_door(request: Request) -> Response:
    """Where to go from here: a browser is sent to the web console; any other client gets
    the map of the gateway's own documents and probes."""
    if "text/html" in request.headers.get("accept", ""):
        return RedirectResponse(f"{CONSOLE_PATH}/", status_code=status.HTTP_307_TEMPORARY_REDIRECT)
    return JSONResponse(
        {
            "service": "CRM platform API",
            "version": VERSION,
            "console": f"{CONSOLE_PATH}/",
            "api": "/api/v1",
            "docs": "/docs",
            "openapi": "/openapi.json",
            "events": "/events/asyncapi.json",
            "event_schemas": "/events/{type}.json",
            "health": {"live": "/livez", "ready": "/readyz"},
            "authentication": "Authorization: Bearer <JWT> or X-API-Key: <key>",
        }
    )


@router.get("/openapi.json", include_in_schema=False)
async def platform_openapi(request: Request) -> JSONResponse:
    document = await runtime_of(request).platform_document.document(request.app.openapi())
    return JSONResponse(document)
