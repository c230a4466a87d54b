"""One OpenAPI document for the platform, merged from the services' own documents.

Each service publishes ``/openapi.json``; the gateway fetches them (cached for a
short while, fetched concurrently with a short timeout), keeps the paths the
routing table sends to that service, and adds its own endpoints. A service that
is down is listed under ``x-upstreams`` as unavailable and its paths are simply
missing until it is back: documentation must never fail because one service does.

Component names can clash between services (two ``Customer`` schemas that differ);
a clashing one is renamed ``<service>_<Name>`` and every reference to it in that
service's paths follows.
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import httpx
import structlog

from libs.platform.problems import PROBLEM_SCHEMA, PROBLEM_SCHEMA_NAME, document_problems
from services.gateway.routes import RoutingTable

log = structlog.get_logger("crm.gateway")

Clock = Callable[[], float]
Document = dict[str, Any]

_HTTP_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})
_REF_PREFIX = "#/components/"

# Through the gateway every operation takes either credential.
BEARER_SCHEME = "HTTPBearer"
API_KEY_SCHEME = "ApiKey"
SECURITY_SCHEMES: Document = {
    BEARER_SCHEME: {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
    API_KEY_SCHEME: {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "An API key (also accepted as `Authorization: ApiKey <key>`)",
    },
}
EITHER_CREDENTIAL: list[dict[str, list[str]]] = [{BEARER_SCHEME: []}, {API_KEY_SCHEME: []}]

# What the gateway itself can answer on any forwarded operation: a body that stalls
# (408) or is too large (413), the service down (503), failing (502) or slow (504);
# and, where the caller authenticates, its credential (401), the route's roles (403)
# and the rate limits (429).
_FORWARDING_STATUSES = (502, 503, 504)
_BODY_STATUSES = (408, 413)
_CALLER_STATUSES = (401, 403, 429)


@dataclass(frozen=True, slots=True)
class UpstreamDocument:
    upstream: str
    status: Literal["available", "unavailable"]
    document: Document | None
    error: str | None
    fetched_at: float


class PlatformDocument:
    """The merged document, rebuilt from the services' documents every ``cache_seconds``."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        upstreams: Mapping[str, str],
        routing: RoutingTable,
        *,
        cache_seconds: float,
        fetch_timeout_seconds: float,
        clock: Clock = time.monotonic,
    ) -> None:
        self.client = client
        self.upstreams = dict(upstreams)
        self.routing = routing
        self.cache_seconds = cache_seconds
        self.fetch_timeout_seconds = fetch_timeout_seconds
        self._clock = clock
        self._cached: dict[str, UpstreamDocument] = {}
        # One fetch per service at a time: a burst of /docs visitors is one request.
        self._locks = {name: asyncio.Lock() for name in self.upstreams}

    async def document(self, gateway_document: Document) -> Document:
        fetched = await asyncio.gather(*(self._upstream_document(name) for name in self.upstreams))
        return merge_documents(gateway_document, fetched, self.routing)

    async def _upstream_document(self, upstream: str) -> UpstreamDocument:
        cached = self._cached.get(upstream)
        if cached is not None and self._clock() - cached.fetched_at < self.cache_seconds:
            return cached
        async with self._locks[upstream]:
            cached = self._cached.get(upstream)
            if cached is not None and self._clock() - cached.fetched_at < self.cache_seconds:
                return cached
            fetched = await self._fetch(upstream)
            self._cached[upstream] = fetched
            return fetched

    async def _fetch(self, upstream: str) -> UpstreamDocument:
        url = f"{self.upstreams[upstream]}/openapi.json"
        try:
            response = await self.client.get(url, timeout=self.fetch_timeout_seconds)
            response.raise_for_status()
            document = response.json()
            if not isinstance(document, dict) or not isinstance(document.get("paths"), dict):
                raise ValueError("not an OpenAPI document")
        except (httpx.HTTPError, ValueError) as failed:
            log.info("upstream_openapi_unavailable", upstream=upstream, error=repr(failed))
            reason = f"{type(failed).__name__}: {failed}".strip().rstrip(":")
            return UpstreamDocument(upstream, "unavailable", None, reason, self._clock())
        return UpstreamDocument(upstream, "available", document, None, self._clock())


def merge_documents(
    gateway: Document, upstreams: list[UpstreamDocument], routing: RoutingTable
) -> Document:
    """The gateway's own document plus each available service's routed paths."""
    merged = copy.deepcopy(gateway)
    merged.setdefault("paths", {})
    components: dict[str, dict[str, Any]] = merged.setdefault("components", {})
    components.setdefault("securitySchemes", {}).update(SECURITY_SCHEMES)
    components.setdefault("schemas", {})[PROBLEM_SCHEMA_NAME] = PROBLEM_SCHEMA
    operation_ids = _operation_ids(merged["paths"])
    status: dict[str, Any] = {}

    for fetched in upstreams:
        if fetched.document is None:
            status[fetched.upstream] = {"status": "unavailable", "error": fetched.error}
            continue
        document = fetched.document
        renames = _clashing_components(components, document.get("components", {}), fetched.upstream)
        document = _rename_references(document, renames)
        for section, entries in document.get("components", {}).items():
            if section == "securitySchemes":
                continue  # replaced by the gateway's: both credentials work through it
            target = components.setdefault(section, {})
            for name, definition in entries.items():
                renamed = renames.get(f"{_REF_PREFIX}{section}/{name}")
                target[renamed.rsplit("/", 1)[-1] if renamed else name] = definition
        routed = 0
        for path, item in document["paths"].items():
            route = routing.route_for(path)
            if route is None or route.upstream != fetched.upstream:
                continue  # the service's own /healthz, or a path another service owns
            merged["paths"][path] = _through_gateway(item, fetched.upstream, operation_ids)
            routed += 1
        status[fetched.upstream] = {"status": "available", "paths": routed}

    merged["x-upstreams"] = status
    unavailable = sorted(name for name, entry in status.items() if entry["status"] != "available")
    if unavailable:
        note = f"Unavailable right now, their paths are missing: {', '.join(unavailable)}."
        info = merged.setdefault("info", {})
        info["description"] = f"{info.get('description', '')}\n\n{note}".strip()
    return merged


def _operation_ids(paths: Mapping[str, Any]) -> set[str]:
    return {
        operation["operationId"]
        for item in paths.values()
        for method, operation in item.items()
        if method in _HTTP_METHODS and isinstance(operation, dict) and "operationId" in operation
    }


def _through_gateway(item: Document, upstream: str, operation_ids: set[str]) -> Document:
    """A path item as seen through the gateway: either credential, owner named."""
    item = copy.deepcopy(item)
    for method, operation in item.items():
        if method not in _HTTP_METHODS or not isinstance(operation, dict):
            continue
        operation["x-service"] = upstream
        statuses: tuple[int, ...] = _FORWARDING_STATUSES
        if "requestBody" in operation:
            statuses += _BODY_STATUSES
        if operation.get("security"):
            operation["security"] = EITHER_CREDENTIAL
            statuses += _CALLER_STATUSES
        document_problems(operation, statuses)
        operation_id = operation.get("operationId")
        if isinstance(operation_id, str):
            if operation_id in operation_ids:
                operation_id = operation["operationId"] = f"{upstream}_{operation_id}"
            operation_ids.add(operation_id)
    return item


def _clashing_components(
    merged: Mapping[str, Mapping[str, Any]], incoming: Mapping[str, Any], upstream: str
) -> dict[str, str]:
    """``#/components/<section>/<Name>`` -> renamed reference, for names taken by another
    definition. Identical definitions (the standard validation error) are shared."""
    renames: dict[str, str] = {}
    for section, entries in incoming.items():
        if section == "securitySchemes" or not isinstance(entries, dict):
            continue
        existing = merged.get(section, {})
        for name, definition in entries.items():
            if name in existing and existing[name] != definition:
                renames[f"{_REF_PREFIX}{section}/{name}"] = (
                    f"{_REF_PREFIX}{section}/{upstream}_{name}"
                )
    return renames


def _rename_references(node: Any, renames: Mapping[str, str]) -> Any:
    if not renames:
        return node
    if isinstance(node, dict):
        return {
            key: (
                renames.get(value, value)
                if key == "$ref" and isinstance(value, str)
                else _rename_references(value, renames)
            )
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_rename_references(value, renames) for value in node]
    return node
