"""Stand-ins for the contacts and customer360 services, served over real HTTP.

They are built the way every service is (``create_service_app``, ``libs.auth``
``require``), so what they accept is what a real service accepts: a forwarded
token they refuse here would be refused by contacts too. Each endpoint echoes
what arrived, so tests can assert on exactly what the gateway sent.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any, ClassVar, Literal

import uvicorn
from fastapi import (
    APIRouter,
    Body,
    Depends,
    FastAPI,
    File,
    Form,
    Query,
    Request,
    Response,
    UploadFile,
)
from fastapi.responses import StreamingResponse

from libs.auth import Principal, require
from libs.platform.app import (
    create_service_app,
    current_correlation_id,
    current_request_id,
    etag_for,
    if_match_version,
)
from libs.platform.broker import free_port
from libs.platform.errors import PreconditionFailed
from libs.platform.settings import ServiceSettings

ECHOED_HEADERS = (
    "authorization",
    "x-access-logged-by",
    "content-type",
    "accept",
    "if-match",
    "user-agent",
    "accept-language",
    "x-request-id",
    "x-correlation-id",
    "x-api-key",
    "x-tenant-id",
    "cookie",
    "x-forwarded-for",
)

EXPORT_CHUNK = bytes(range(256)) * 4096  # 1 MiB
EXPORT_CHUNKS = 3
SLOW_SECONDS = 6.0


def echo(request: Request, principal: Principal) -> dict[str, Any]:
    return {
        "tenant": principal.tenant_id,
        "subject": principal.subject,
        "roles": sorted(principal.roles),
        "method": request.method,
        "path": request.url.path,
        "query": [list(pair) for pair in request.query_params.multi_items()],
        "headers": {name: request.headers.get(name) for name in ECHOED_HEADERS},
        "request_id": current_request_id(),
        "correlation_id": current_correlation_id(),
    }


# --- contacts ----------------------------------------------------------------------

contacts = APIRouter(prefix="/api/v1")


@contacts.get("/customers")
async def search_customers(
    request: Request, principal: Annotated[Principal, Depends(require("customers:read"))]
) -> dict[str, Any]:
    return echo(request, principal)


@contacts.post("/customers", status_code=201)
async def register_customer(
    command: Annotated[dict[str, Any], Body()],
    request: Request,
    response: Response,
    principal: Annotated[Principal, Depends(require("customers:write"))],
) -> dict[str, Any]:
    response.headers["Location"] = "/api/v1/customers/c-1"
    response.headers["ETag"] = etag_for(1)
    return {**echo(request, principal), "body": command}


@contacts.post("/customers/import")
async def import_customers(
    request: Request,
    principal: Annotated[Principal, Depends(require("customers:import"))],
    file: Annotated[UploadFile, File()],
    mapping: Annotated[str, Form()],
) -> dict[str, Any]:
    content = await file.read()
    return {
        **echo(request, principal),
        "filename": file.filename,
        "size": len(content),
        "sha256": hashlib.sha256(content).hexdigest(),
        "mapping": mapping,
    }


@contacts.get("/customers/unhurried")
async def unhurried_search(
    principal: Annotated[Principal, Depends(require("customers:read"))],
    seconds: Annotated[float, Query(ge=0, le=2)] = 0.3,
) -> dict[str, str]:
    await asyncio.sleep(seconds)
    return {"status": "in time"}


@contacts.get("/customers/slow")
async def slow_search(
    principal: Annotated[Principal, Depends(require("customers:read"))],
) -> dict[str, str]:
    await asyncio.sleep(SLOW_SECONDS)
    return {"status": "too late"}


@contacts.patch("/customers/{customer_id}")
async def change_customer(
    customer_id: str,
    request: Request,
    response: Response,
    principal: Annotated[Principal, Depends(require("customers:write"))],
    expected_version: Annotated[int | None, Depends(if_match_version)],
) -> dict[str, Any]:
    if expected_version is not None and expected_version != 3:
        raise PreconditionFailed("customer changed since", current_version=3)
    response.headers["ETag"] = etag_for(4)
    return {**echo(request, principal), "customer_id": customer_id}


@contacts.post("/customers/{customer_id}/merge")
async def merge_customers(
    customer_id: str,
    request: Request,
    principal: Annotated[Principal, Depends(require("customers:merge"))],
) -> dict[str, Any]:
    return {**echo(request, principal), "survivor": customer_id}


@contacts.get("/customers/{customer_id}/export")
async def export_customer(
    customer_id: str, principal: Annotated[Principal, Depends(require("customers:read"))]
) -> StreamingResponse:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(EXPORT_CHUNKS):
            yield EXPORT_CHUNK
            await asyncio.sleep(0)

    return StreamingResponse(chunks(), media_type="application/octet-stream")


@contacts.get("/custom-fields")
async def list_custom_fields(
    request: Request, principal: Annotated[Principal, Depends(require("customers:read"))]
) -> dict[str, Any]:
    return echo(request, principal)


@contacts.put("/custom-fields/{name}")
async def define_custom_field(
    name: str,
    request: Request,
    principal: Annotated[Principal, Depends(require("custom_fields:write"))],
) -> dict[str, Any]:
    return {**echo(request, principal), "name": name}


# --- customer360 -------------------------------------------------------------------

customer360 = APIRouter(prefix="/api/v1")


@customer360.get("/customers/{customer_id}/360")
async def customer_view(
    customer_id: str,
    request: Request,
    principal: Annotated[Principal, Depends(require("customers:read"))],
) -> dict[str, Any]:
    return {**echo(request, principal), "view": "customer360", "customer_id": customer_id}


@customer360.get("/projections/customer360/status")
async def projection_status(
    principal: Annotated[Principal, Depends(require("customers:read"))],
) -> dict[str, int]:
    return {"lag_events": 0}


pipeline = APIRouter(prefix="/api/v1")


@pipeline.get("/orders/{order_id}")
async def get_order(
    order_id: str,
    request: Request,
    principal: Annotated[Principal, Depends(require("customers:read"))],
) -> dict[str, Any]:
    return {"service": "pipeline", "order_id": order_id, **echo(request, principal)}


class _FakePipelineSettings(ServiceSettings):
    service_name: ClassVar[str] = "pipeline-stand-in"


class _FakeContactsSettings(ServiceSettings):
    service_name: ClassVar[str] = "contacts-stand-in"
    # As the real contacts service: a whole CSV migration fits in one request.
    max_request_body_bytes: int = 64 * 1024 * 1024


class _FakeCustomer360Settings(ServiceSettings):
    service_name: ClassVar[str] = "customer360-stand-in"


def contacts_app() -> FastAPI:
    return create_service_app(
        title="contacts", version="test", settings=_FakeContactsSettings(), routers=[contacts]
    )


def customer360_app() -> FastAPI:
    return create_service_app(
        title="customer360",
        version="test",
        settings=_FakeCustomer360Settings(),
        routers=[customer360],
    )


def pipeline_app() -> FastAPI:
    return create_service_app(
        title="pipeline", version="test", settings=_FakePipelineSettings(), routers=[pipeline]
    )


class UpstreamServer:
    """An ASGI app served by uvicorn on a free port, in a thread with its own loop."""

    def __init__(self, app: FastAPI, *, lifespan: Literal["on", "off"] = "off") -> None:
        self.app = app
        self.port = free_port()
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan=lifespan,
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> UpstreamServer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"upstream on port {self.port} did not start")
            time.sleep(0.01)
        return self

    @property
    def requests_in_progress(self) -> int:
        """Requests whose headers arrived and whose answer is not finished (a task
        that has finished can linger in the server's set for a moment: not counted)."""
        return sum(1 for task in list(self._server.server_state.tasks) if not task.done())

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=5)


def nowhere() -> str:
    """The URL of a service that is down: a free port nothing listens on."""
    return f"http://127.0.0.1:{free_port()}"


@asynccontextmanager
async def short_answer(*, then: Literal["close", "stall"]) -> AsyncIterator[str]:
    """A service that answers 200 with ``Content-Length: 1000`` but sends only the
    first bytes, then closes the connection or sends nothing more."""
    release = asyncio.Event()

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
            b'content-length: 1000\r\n\r\n{"customer_id": '
        )
        await writer.drain()
        if then == "stall":
            await release.wait()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        release.set()
        server.close()
        await server.wait_closed()
