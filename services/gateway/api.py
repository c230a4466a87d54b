"""The gateway's HTTP surface: its own endpoints, and the forwarding of everything else under /api.

Every /api request is authenticated (bearer JWT or API key), then rate limited,
then routed; the order means a stranger learns nothing about the routing table
and a refused request never reaches a service.
"""

from __future__ import annotations

import asyncio
import functools
import time
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar

import httpx
from fastapi import Depends, HTTPException, Request, Response, Security, status
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import text

from libs.auth import Principal, Role
from libs.auth.dependencies import PRINCIPAL_STATE_KEY, current_principal
from libs.platform.app import ROUTE_TEMPLATE_KEY
from libs.platform.dependencies import body_errors
from libs.platform.errors import Forbidden, NotFound
from libs.platform.problems import can_refuse
from libs.platform.routing import ServiceRouter
from services.gateway.api_keys import ApiKey, issue_api_key
from services.gateway.authentication import ApiKeyRejected, ApiKeysUnavailable, Caller
from services.gateway.open_resources import GatewayRuntime
from services.gateway.openapi import API_KEY_SCHEME, BEARER_SCHEME

VERSION = "0.1.0"
API_KEYS_PATH = "/api/v1/api-keys"
API_KEYS_PERMISSION = "api_keys:manage"

router = ServiceRouter()

CommandT = TypeVar("CommandT", bound=BaseModel)

# auto_error=False: the gateway answers 401 itself, naming both accepted credentials.
_bearer = HTTPBearer(auto_error=False, scheme_name=BEARER_SCHEME)
_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, scheme_name=API_KEY_SCHEME)

# Where the web console is served (services/gateway/console.py mounts it).
CONSOLE_PATH = "/console"


def runtime_of(request: Request) -> GatewayRuntime:
    runtime = getattr(request.app.state, "gateway", None)
    if not isinstance(runtime, GatewayRuntime):
        raise RuntimeError("the gateway runtime is not started (lifespan did not run)")
    return runtime


# --- who is calling --------------------------------------------------------------


def _api_key_in_authorization(request: Request) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "apikey":
        return None
    return value.strip() or None


async def authenticated_caller(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    api_key_header: Annotated[str | None, Security(_api_key_header)],
) -> Caller:
    """The caller, from a bearer JWT or an API key (401 when neither holds)."""
    api_keys = {key for key in (api_key_header, _api_key_in_authorization(request)) if key}
    if len(api_keys) > 1 or (api_keys and bearer is not None):
        # Two credentials that may name two different callers: refuse to guess.
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="send one credential: a bearer token or an API key, not both",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not api_keys:
        # libs.auth's check, so the gateway refuses exactly what the services refuse.
        principal = await current_principal(request, bearer)
        assert bearer is not None  # current_principal refused a missing token
        return Caller(principal=principal, upstream_authorization=f"Bearer {bearer.credentials}")
    try:
        caller = await runtime_of(request).authenticator.authenticate(api_keys.pop())
    except ApiKeyRejected as rejected:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail=f"invalid API key: {rejected.reason}",
            headers={"WWW-Authenticate": 'ApiKey error="invalid_key"'},
        ) from None
    except ApiKeysUnavailable:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            detail="API keys are not accepted by this gateway at the moment",
        ) from None
    setattr(request.state, PRINCIPAL_STATE_KEY, caller.principal)
    return caller


@can_refuse(429)
async def admitted_caller(
    request: Request, caller: Annotated[Caller, Depends(authenticated_caller)]
) -> Caller:
    """An authenticated caller within its tenant's and its own rate limits (429 otherwise)."""
    principal = caller.principal
    runtime_of(request).rate_limits.admit(principal.tenant_id, principal.subject)
    return caller


async def forwarded_caller(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    api_key_header: Annotated[str | None, Security(_api_key_header)],
) -> Caller | None:
    """The admitted caller; None, without asking for credentials, on a path that holds
    its own (a survey link's one-time token), which its service checks."""
    route = runtime_of(request).routing.route_for(request.scope["path"])
    # Metrics and the access log name the service's route, not the forwarding catch-all,
    # also for a request refused before it is forwarded (401, 403, 429).
    request.scope[ROUTE_TEMPLATE_KEY] = route.template if route is not None else "unmatched"
    if route is not None and route.credential_in_path:
        return None
    caller = await authenticated_caller(request, bearer, api_key_header)
    return await admitted_caller(request, caller)


@can_refuse(403)
async def api_key_administrator(
    caller: Annotated[Caller, Depends(admitted_caller)],
) -> Principal:
    principal = caller.principal
    if not principal.may(API_KEYS_PERMISSION):
        raise Forbidden(f"{API_KEYS_PERMISSION} needs the role: {Role.ADMIN.value}")
    if principal.via != "jwt":
        # A leaked key must not be able to mint keys that outlive its revocation.
        raise Forbidden("API keys are managed by a signed-in admin, not with an API key")
    return principal


# --- API keys ----------------------------------------------------------------------


class CreateApiKey(BaseModel):
    name: str = Field(min_length=1, max_length=200, examples=["ERP nightly sync"])
    roles: list[Role] = Field(min_length=1, examples=[["integration"]])


class ApiKeyView(BaseModel):
    id: str
    name: str
    roles: list[str]
    prefix: str = Field(description="The first characters of the key, to tell keys apart")
    status: Literal["active", "revoked"]
    created_at: datetime
    created_by: str
    last_used_at: datetime | None
    revoked_at: datetime | None
    revoked_by: str | None

    @classmethod
    def of(cls, api_key: ApiKey) -> ApiKeyView:
        return cls(
            id=api_key.id,
            name=api_key.name,
            roles=sorted(api_key.roles),
            prefix=api_key.visible_prefix,
            status="revoked" if api_key.revoked else "active",
            created_at=api_key.created_at,
            created_by=api_key.created_by,
            last_used_at=api_key.last_used_at,
            revoked_at=api_key.revoked_at,
            revoked_by=api_key.revoked_by,
        )


class CreatedApiKey(ApiKeyView):
    key: str = Field(description="The secret itself: shown this once, never again")


class ApiKeyList(BaseModel):
    items: list[ApiKeyView]


def _inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """``model``'s JSON Schema with its ``$defs`` written in place, for an operation
    whose body the endpoint reads itself (a ``#/$defs`` reference would not resolve
    inside the OpenAPI document)."""
    schema = model.model_json_schema()
    definitions = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            reference = node.get("$ref")
            if isinstance(reference, str) and reference.startswith("#/$defs/"):
                return inline(definitions[reference.removeprefix("#/$defs/")])
            return {key: inline(value) for key, value in node.items()}
        if isinstance(node, list):
            return [inline(value) for value in node]
        return node

    inlined: dict[str, Any] = inline(schema)
    return inlined


async def _body_of(request: Request, model: type[CommandT]) -> CommandT:
    """The request body as ``model``, refused with the usual 422 (``errors`` per field)."""
    try:
        return model.model_validate_json(await request.body())
    except ValidationError as invalid:
        raise body_errors(invalid) from None


# The body is read after the permission check (a declared body parameter would be
# parsed first, so a viewer sending a malformed body got a 422 instead of its 403).
@router.post(
    API_KEYS_PATH,
    status_code=201,
    tags=["api keys"],
    responses={422: {"description": "The body is not JSON, or a field is invalid (errors)"}},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _inline_schema(CreateApiKey)}},
        }
    },
)
async def create_api_key(
    request: Request,
    response: Response,
    admin: Annotated[Principal, Depends(api_key_administrator)],
) -> CreatedApiKey:
    """Create an API key for the caller's tenant. The response is the only place the key appears."""
    command = await _body_of(request, CreateApiKey)
    issued = issue_api_key(
        tenant_id=admin.tenant_id,
        name=command.name,
        roles=[role.value for role in command.roles],
        created_by=admin.subject,
        now=datetime.now(UTC),
    )
    api_key = await runtime_of(request).api_keys.add(issued)
    response.headers["Location"] = f"{API_KEYS_PATH}/{api_key.id}"
    # The body holds a secret: no cache on the way may keep a copy.
    response.headers["Cache-Control"] = "no-store"
    return CreatedApiKey(**ApiKeyView.of(api_key).model_dump(), key=issued.secret)


@router.get(API_KEYS_PATH, tags=["api keys"])
async def list_api_keys(
    request: Request, admin: Annotated[Principal, Depends(api_key_administrator)]
) -> ApiKeyList:
    """Every key of the caller's tenant, revoked ones included; never a secret."""
    keys = await runtime_of(request).api_keys.list_for_tenant(admin.tenant_id)
    return ApiKeyList(items=[ApiKeyView.of(api_key) for api_key in keys])


@router.get(API_KEYS_PATH + "/{key_id}", tags=["api keys"])
async def get_api_key(
    key_id: str, request: Request, admin: Annotated[Principal, Depends(api_key_administrator)]
) -> ApiKeyView:
    return ApiKeyView.of(await runtime_of(request).api_keys.get(admin.tenant_id, key_id))


@router.delete(API_KEYS_PATH + "/{key_id}", status_code=204, tags=["api keys"])
async def revoke_api_key(
    key_id: str, request: Request, admin: Annotated[Principal, Depends(api_key_administrator)]
) -> None:
    """Revoke a key of the caller's tenant: refused from now on (other gateway processes
    follow within API_KEY_CACHE_SECONDS). Revoking twice is harmless."""
    runtime = runtime_of(request)
    await runtime.api_keys.revoke(admin.tenant_id, key_id, by=admin.subject, now=datetime.now(UTC))
    runtime.authenticator.forget(key_id)


# --- the platform's document and health ------------------------------------------------


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


@router.get("/healthz", include_in_schema=False)
async def healthz(request: Request) -> JSONResponse:
    """200 while the gateway itself works, whatever the services' state (each is reported);
    503 only when its own database is unreachable. A load balancer that took the gateway
    out because one service is down would turn a partial outage into a total one."""
    runtime = runtime_of(request)
    timeout = runtime.settings.upstream_probe_timeout_seconds
    database, *upstreams = await asyncio.gather(
        _database_health(runtime, timeout),
        *(
            _upstream_health(runtime.client, url, timeout)
            for url in runtime.settings.upstream_urls().values()
        ),
    )
    upstream_report = dict(zip(runtime.settings.upstream_urls(), upstreams, strict=True))
    healthy = database["status"] == "up"
    all_up = all(report["status"] == "up" for report in upstreams)
    body = {
        "status": "ok" if healthy and all_up else ("degraded" if healthy else "failing"),
        "service": runtime.settings.service_name,
        "version": VERSION,
        "database": database,
        "upstreams": upstream_report,
    }
    return JSONResponse(body, status_code=200 if healthy else 503)


@router.get("/readyz", include_in_schema=False)
async def readyz(request: Request) -> JSONResponse:
    """200 once the gateway's database answers and every service behind it has been
    ready once since the gateway started; a service down later is its own outage, not
    the gateway's (decision 0100). Each service's readiness is reported."""
    runtime = runtime_of(request)
    timeout = runtime.settings.upstream_probe_timeout_seconds
    urls = runtime.settings.upstream_urls()
    database, *upstreams = await asyncio.gather(
        _database_health(runtime, timeout),
        *(_upstream_health(runtime.client, url, timeout, probe="/readyz") for url in urls.values()),
    )
    reports = dict(zip(urls, upstreams, strict=True))
    waiting = sorted(name for name, report in reports.items() if report["status"] != "ready")
    runtime.upstreams_ready_once = runtime.upstreams_ready_once or not waiting
    ready = database["status"] == "up" and runtime.upstreams_ready_once
    body: dict[str, Any] = {"status": "ready" if ready else "not_ready"}
    body |= {"service": runtime.settings.service_name}
    body |= {"database": database, "upstreams": reports}
    if not runtime.upstreams_ready_once:
        body["waiting_for"] = waiting
    return JSONResponse(body, status_code=200 if ready else 503)


async def _database_health(runtime: GatewayRuntime, timeout: float) -> dict[str, Any]:
    started_at = time.perf_counter()
    try:
        async with asyncio.timeout(timeout), runtime.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as failed:  # any failure means the same thing here: down
        return {"status": "down", "detail": type(failed).__name__}
    return {"status": "up", "latency_ms": _ms_since(started_at)}


async def _upstream_health(
    client: httpx.AsyncClient, url: str, timeout: float, *, probe: str = "/healthz"
) -> dict[str, Any]:
    started_at = time.perf_counter()
    report: dict[str, Any] = {"url": url}
    try:
        response = await client.get(f"{url}{probe}", timeout=timeout)
    except httpx.HTTPError as failed:
        return {**report, "status": "down", "detail": type(failed).__name__}
    report["latency_ms"] = _ms_since(started_at)
    if response.status_code != 200:
        return {**report, "status": "down", "detail": f"status {response.status_code}"}
    return {**report, "status": "up" if probe == "/healthz" else "ready"}


def _ms_since(started_at: float) -> float:
    return round((time.perf_counter() - started_at) * 1000, 2)


# --- forwarding: last, so the gateway's own /api paths win ----------------------------


@router.api_route(
    "/api/{path:path}",
    methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
    include_in_schema=False,
)
async def forward(
    request: Request, caller: Annotated[Caller | None, Depends(forwarded_caller)]
) -> Response:
    path: str = request.scope["path"]
    if path == API_KEYS_PATH or path.startswith(API_KEYS_PATH + "/"):
        raise HTTPException(status.HTTP_405_METHOD_NOT_ALLOWED, detail="method not allowed")
    route = runtime_of(request).routing.route_for(path)
    if route is None:
        raise NotFound(f"no service serves {path}")
    if caller is None:  # a path that is its own credential (forwarded_caller checked)
        return await runtime_of(request).proxy.forward(request, route, None)
    if not route.permits(caller.principal, request.method):
        raise Forbidden(
            f"{request.method} {path} needs one of the roles: "
            + ", ".join(route.roles_for(request.method))
        )
    return await runtime_of(request).proxy.forward(request, route, caller)
