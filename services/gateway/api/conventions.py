"""What every gateway endpoint shares: its version, where the console is, its runtime."""

from __future__ import annotations

from fastapi import Request

from services.gateway.open_resources import GatewayRuntime

VERSION = "0.1.0"

# Where the web console is served (services/gateway/console.py mounts it).
CONSOLE_PATH = "/console"


def runtime_of(request: Request) -> GatewayRuntime:
    runtime = getattr(request.app.state, "gateway", None)
    if not isinstance(runtime, GatewayRuntime):
        raise RuntimeError("the gateway runtime is not started (lifespan did not run)")
    return runtime
