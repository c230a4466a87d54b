"""What every gateway endpoint shares: its version, where the console is, its runtime,
and reading a command's body after the permission check."""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError

from libs.platform.dependencies import body_errors
from services.gateway.open_resources import GatewayRuntime

VERSION = "0.1.0"

# Where the web console is served (services/gateway/console.py mounts it).
CONSOLE_PATH = "/console"


def set_password_url(base: str, secret: str) -> str:
    """The console's page for a one-time link; the secret in the fragment, which browsers
    never send to a server (nor to its logs)."""
    return f"{base.rstrip('/')}{CONSOLE_PATH}/#/set-password?token={secret}"


def runtime_of(request: Request) -> GatewayRuntime:
    runtime = getattr(request.app.state, "gateway", None)
    if not isinstance(runtime, GatewayRuntime):
        raise RuntimeError("the gateway runtime is not started (lifespan did not run)")
    return runtime


CommandT = TypeVar("CommandT", bound=BaseModel)


def inline_schema(model: type[BaseModel]) -> dict[str, Any]:
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


async def body_of(request: Request, model: type[CommandT]) -> CommandT:
    """The request body as ``model``, refused with the usual 422 (``errors`` per field)."""
    try:
        return model.model_validate_json(await request.body())
    except ValidationError as invalid:
        raise body_errors(invalid) from None


def documented_body(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` for an operation that reads a ``model`` body itself (``body_of``)."""
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": inline_schema(model)}},
        }
    }
