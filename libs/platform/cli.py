"""``crm``: run the platform, serve one service, mint a local token, export schemas.

crm run                      every service that exists, the embedded broker, SQLite files
crm serve contacts           one service process (uvicorn, its app factory)
crm broker                   the bundled Kafka-compatible broker in the foreground
crm token --tenant acme      a signed bearer token for local use
crm schemas docs/events      JSON Schemas of every event type and the AsyncAPI document
crm republish contacts       the whole event store of a service, to rebuild its topic
crm rebuild customer360      a projection's new generation from the earliest offset
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import json
import os
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from sqlalchemy.engine import make_url

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)

# Fixed localhost ports of the embedded default; the gateway is the front door.
PORTS = {
    "gateway": 8000,
    "contacts": 8001,
    "pipeline": 8002,
    "tickets": 8003,
    "loyalty": 8004,
    "alerts": 8005,
    "customer360": 8006,
}
BROKER_PORT = 9092


def existing_services() -> list[str]:
    """Services whose code exists so far (an empty package is not a process)."""
    found = []
    for name in PORTS:
        try:
            if importlib.util.find_spec(f"services.{name}.app") is not None:
                found.append(name)
        except ModuleNotFoundError:  # the service's package does not exist yet
            continue
    return found


def service_database_url(base: str, service: str) -> str:
    """One database per service: PostgreSQL ``<db>_<service>``, or SQLite ``var/<service>.db``."""
    if not base:
        return f"sqlite+aiosqlite:///var/{service}.db"
    url = make_url(base)
    if url.get_backend_name() == "sqlite":
        folder = Path(url.database or "var/x.db").parent
        return f"sqlite+aiosqlite:///{folder / f'{service}.db'}"
    return url.set(database=f"{url.database or 'crm'}_{service}").render_as_string(
        hide_password=False
    )


async def _create_postgres_databases(urls: list[str]) -> None:
    import asyncpg

    for url in urls:
        parsed = make_url(url)
        admin = parsed.set(drivername="postgresql", database="postgres")
        conn = await asyncpg.connect(admin.render_as_string(hide_password=False))
        try:
            exists = await conn.fetchval(
                "SELECT 1 FROM pg_database WHERE datname = $1", parsed.database
            )
            if not exists:
                await conn.execute(f'CREATE DATABASE "{parsed.database}"')
        finally:
            await conn.close()


@dataclass(frozen=True)
class PlatformProcess:
    name: str
    command: list[str]
    env: dict[str, str]
    url: str


def platform_processes(
    *, database_url: str, bootstrap: str, ports: dict[str, int], broker_port: int | None
) -> list[PlatformProcess]:
    """What ``crm run`` starts; the end-to-end tests start the same on free ports."""
    crm = [sys.executable, "-m", "libs.platform.cli"]
    processes = []
    if broker_port is not None:
        processes.append(
            PlatformProcess(
                "broker",
                [*crm, "broker", "--port", str(broker_port)],
                dict(os.environ),
                f"127.0.0.1:{broker_port} (embedded, memory only)",
            )
        )
    upstreams = {f"{name.upper()}_URL": f"http://127.0.0.1:{port}" for name, port in ports.items()}
    for name in existing_services():
        if name not in ports:
            continue
        db = service_database_url(database_url, name)
        env = {
            **os.environ,
            **upstreams,
            "DATABASE_URL": db,
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "HTTP_PORT": str(ports[name]),
            "PYTHONUNBUFFERED": "1",
        }
        processes.append(
            PlatformProcess(
                name,
                [*crm, "serve", name],
                env,
                f"http://127.0.0.1:{ports[name]}  (/docs, /metrics)  db {db}",
            )
        )
    return processes


@app.command()
def run() -> None:
    """Start the platform: broker (unless KAFKA_BOOTSTRAP_SERVERS is set) and every service."""
    from honcho.manager import Manager

    base_url = os.environ.get("DATABASE_URL", "")
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "")
    Path("var").mkdir(exist_ok=True)
    processes = platform_processes(
        database_url=base_url,
        bootstrap=external or f"127.0.0.1:{BROKER_PORT}",
        ports=PORTS,
        broker_port=None if external else BROKER_PORT,
    )
    postgres = [
        p.env["DATABASE_URL"]
        for p in processes
        if make_url(p.env.get("DATABASE_URL", "sqlite://")).get_backend_name() == "postgresql"
    ]
    if postgres:
        asyncio.run(_create_postgres_databases(postgres))

    manager = Manager()
    lines = [] if not external else [f"  broker        {external} (external)"]
    for process in processes:
        manager.add_process(process.name, shlex.join(process.command), env=process.env)
        lines.append(f"  {process.name:<13} {process.url}")
    print("customer-lifecycle platform:", *lines, sep="\n", flush=True)
    print("Ctrl-C stops everything.", flush=True)
    manager.loop()
    sys.exit(manager.returncode)


@app.command()
def serve(
    service: str,
    port: Annotated[int | None, typer.Option(help="default: the service's HTTP_PORT")] = None,
) -> None:
    """Serve one service with uvicorn (its create_app factory)."""
    import uvicorn

    if service not in PORTS:
        raise typer.BadParameter(f"unknown service {service!r}; one of {', '.join(PORTS)}")
    settings_module = importlib.import_module(f"services.{service}.settings")
    settings = settings_module.Settings()
    uvicorn.run(
        f"services.{service}.app:create_app",
        factory=True,
        host=settings.http_host,
        port=port or int(os.environ.get("HTTP_PORT", PORTS[service])),
        loop="uvloop",
        http="httptools",
        access_log=False,  # the platform logs one JSON line per request itself
        log_level=settings.log_level.lower(),
    )


@app.command()
def broker(port: int = BROKER_PORT) -> None:
    """Run the bundled broker (memory storage) in the foreground."""
    from libs.platform.broker import EmbeddedBroker

    command = EmbeddedBroker(port).command()
    os.execv(command[0], command)


@app.command()
def token(
    tenant: Annotated[str, typer.Option(help="tenant id")] = "demo",
    subject: Annotated[str, typer.Option(help="user id")] = "admin@demo",
    roles: Annotated[str, typer.Option(help="comma-separated roles")] = "admin",
    ttl: Annotated[int, typer.Option(help="seconds")] = 8 * 3600,
) -> None:
    """Print a bearer token signed with JWT_SECRET (the development secret by default)."""
    from libs.auth import issue_token
    from libs.platform.settings import ServiceSettings

    settings = ServiceSettings().auth()
    role_list = [r.strip() for r in roles.split(",") if r.strip()]
    print(issue_token(settings, subject, tenant, role_list, ttl_seconds=ttl))


def catalogs() -> dict[str, Any]:
    """Every published catalog, by service (libs/events/catalog/<service>.py)."""
    import pkgutil

    import libs.events.catalog as package

    found = {}
    for module in pkgutil.iter_modules(package.__path__):
        loaded = importlib.import_module(f"libs.events.catalog.{module.name}")
        if hasattr(loaded, "catalog"):
            found[module.name] = loaded.catalog
    return found


@app.command()
def schemas(directory: Annotated[Path, typer.Argument()] = Path("docs/events")) -> None:
    """Write the JSON Schema of every event type and the AsyncAPI document."""
    from libs.events.asyncapi import asyncapi_document

    everything = catalogs()
    written = 0
    for service_catalog in everything.values():
        written += len(service_catalog.export_schemas(directory / "schemas"))
    document = asyncapi_document(everything)
    (directory / "asyncapi.json").write_text(
        json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    print(f"{written} schemas and asyncapi.json written to {directory}")


@app.command()
def republish(service: str) -> None:
    """Publish a service's whole event store again (after a topic was lost)."""
    from libs.events.db import create_engine
    from libs.events.kafka import service_topic
    from libs.events.outbox import OutboxRelay
    from libs.events.store import EventStore

    settings = importlib.import_module(f"services.{service}.settings").Settings()
    service_catalog = catalogs().get(service)

    async def go() -> int:
        engine = create_engine(settings.database_url)
        relay = OutboxRelay(
            EventStore(engine),
            settings.kafka(),
            service=service,
            topic=service_topic(service),
            source=f"/crm/{service}",
            schema_url=service_catalog.schema_url if service_catalog else (lambda _t: None),
        )
        try:
            return await relay.republish_all()
        finally:
            await relay.close()
            await engine.dispose()

    print(f"republished {asyncio.run(go())} events of {service}")


@app.command()
def rebuild(service: str) -> None:
    """Rebuild a projection into a new generation and swap it in (the old one serves meanwhile)."""
    from libs.events.db import create_engine
    from libs.events.projection import rebuild as rebuild_projection

    module = importlib.import_module(f"services.{service}.projection")
    settings = importlib.import_module(f"services.{service}.settings").Settings()

    async def go() -> int:
        engine = create_engine(settings.database_url)
        try:
            return await rebuild_projection(
                module.projection_factory, engine, settings.kafka(), module.catalog
            )
        finally:
            await engine.dispose()

    print(f"{service}: generation {asyncio.run(go())} is now active")


if __name__ == "__main__":
    app()
