"""``crm``: run the platform, serve one service, mint a local token, export schemas.

The commands work on the services the composition root declares
(``build_cli(services)``); nothing here knows a service by name.

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
import json
import os
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from sqlalchemy.engine import make_url

from libs.platform.service import ServiceDeclaration

BROKER_PORT = 9092


def service_database_url(base: str, service: str) -> str:
    """One database per service: PostgreSQL ``<db>_<service>``, or SQLite ``var/<service>.db``.

    A URL that already names the service's own database is kept, so an operator can give
    the recovery commands either the platform's ``DATABASE_URL`` (as ``make run`` got it)
    or the one a deployment hands that service (``.../crm_contacts``).
    """
    if not base:
        return f"sqlite+aiosqlite:///var/{service}.db"
    url = make_url(base)
    if url.get_backend_name() == "sqlite":
        database = Path(url.database or "var/x.db")
        if database.name == f"{service}.db":
            return base
        return f"sqlite+aiosqlite:///{database.parent / f'{service}.db'}"
    if (url.database or "").endswith(f"_{service}"):
        return base
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
    services: Sequence[ServiceDeclaration],
    *,
    database_url: str,
    bootstrap: str,
    ports: dict[str, int],
    broker_port: int | None,
    entry_module: str = "services.bootstrap",
) -> list[PlatformProcess]:
    """What ``crm run`` starts; the end-to-end tests start the same on free ports."""
    crm = [sys.executable, "-m", entry_module]
    processes = []
    if broker_port is not None:
        processes.append(
            PlatformProcess(
                "broker",
                [*crm, "broker", "--port", str(broker_port)],
                # The broker has no database: without the platform's DATABASE_URL it
                # cannot be mistaken for a service that needs one created.
                {k: v for k, v in os.environ.items() if k != "DATABASE_URL"},
                f"127.0.0.1:{broker_port} (embedded, memory only)",
            )
        )
    upstreams = {
        f"{service.env_prefix}_URL": f"http://127.0.0.1:{ports[service.name]}"
        for service in services
        if service.name in ports
    }
    for service in services:
        name = service.name
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


def postgres_databases(processes: Sequence[PlatformProcess]) -> list[str]:
    """The PostgreSQL databases the platform's services use (each made if missing)."""
    return [
        p.env["DATABASE_URL"]
        for p in processes
        if "DATABASE_URL" in p.env
        and make_url(p.env["DATABASE_URL"]).get_backend_name() == "postgresql"
    ]


def build_cli(services: Sequence[ServiceDeclaration]) -> typer.Typer:
    """The ``crm`` command for these services (the composition root passes them)."""
    app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
    by_name = {service.name: service for service in services}

    def declared(name: str) -> ServiceDeclaration:
        if name not in by_name:
            raise typer.BadParameter(f"unknown service {name!r}; one of {', '.join(by_name)}")
        return by_name[name]

    @app.command()
    def run() -> None:
        """Start the platform: broker (unless KAFKA_BOOTSTRAP_SERVERS is set) and every service."""
        from honcho.manager import Manager

        base_url = os.environ.get("DATABASE_URL", "")
        external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "")
        Path("var").mkdir(exist_ok=True)
        processes = platform_processes(
            services,
            database_url=base_url,
            bootstrap=external or f"127.0.0.1:{BROKER_PORT}",
            ports={service.name: service.port for service in services},
            broker_port=None if external else BROKER_PORT,
        )
        postgres = postgres_databases(processes)
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
        """Serve one service with uvicorn (its declared app factory)."""
        import uvicorn

        declaration = declared(service)
        settings = declaration.settings()
        uvicorn.run(
            declaration.app,
            factory=True,
            host=settings.http_host,
            port=port or int(os.environ.get("HTTP_PORT", declaration.port)),
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
        """Publish a service's whole event store again (after a topic was lost), through
        the service's own relay: the same store, personal-data policy and topic."""
        from libs.platform.db import create_engine

        declaration = declared(service)
        if declaration.relay is None:
            raise typer.BadParameter(f"{service} publishes no events")
        make_relay = declaration.relay
        settings = service_settings(declaration)

        async def go() -> int:
            engine = create_engine(settings.database_url)
            relay = make_relay(settings, engine)
            try:
                return await relay.republish_all()
            finally:
                await relay.close()
                await engine.dispose()

        print(f"republished {asyncio.run(go())} events of {service}")

    @app.command()
    def rebuild(projection: str) -> None:
        """Rebuild a projection into a new generation and swap it in (the old one serves
        meanwhile)."""
        from libs.events.projection import rebuild as rebuild_projection
        from libs.platform.db import create_engine

        owners = [s for s in services if projection in s.projections]
        if not owners:
            known = [name for s in services for name in s.projections]
            raise typer.BadParameter(
                f"unknown projection {projection!r}; one of {', '.join(known)}"
            )
        owner = owners[0]
        declaration = owner.projections[projection]
        settings = service_settings(owner)

        async def go() -> int:
            engine = create_engine(settings.database_url)
            try:
                return await rebuild_projection(
                    declaration.factory, engine, settings.kafka(), declaration.catalog
                )
            finally:
                await engine.dispose()

        print(f"{projection}: generation {asyncio.run(go())} is now active")

    return app


def service_settings(service: ServiceDeclaration) -> Any:
    """The settings a service process of ``crm run`` gets: its own database under the
    platform's ``DATABASE_URL`` (``crm_contacts`` on PostgreSQL, ``var/contacts.db``)."""
    database = service_database_url(os.environ.get("DATABASE_URL", ""), service.name)
    return service.settings(database_url=database)


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
