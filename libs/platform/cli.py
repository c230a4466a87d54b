"""``crm``: run the platform, serve one service, mint a local token, export schemas.

The commands work on the services the composition root declares
(``build_cli(services)``); nothing here knows a service by name.

crm run                      migrate, then every service and the broker, supervised; SQLite
crm migrate [contacts]       upgrade one or every service's database to this code's schema
crm serve contacts           one service (uvicorn, its app factory; --workers N processes)
crm broker                   the bundled Kafka-compatible broker in the foreground
crm token --tenant acme      a signed bearer token for local use
crm schemas docs/events      JSON Schemas of every event type and the AsyncAPI document
crm republish contacts       the whole event store of a service, to rebuild its topic
crm rebuild customer360      a projection's new generation from the earliest offset
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.engine import make_url

from libs.events.catalog import published_catalogs as catalogs
from libs.platform.broker import taken_ports
from libs.platform.preflight import (
    create_postgres_databases,
    machine_workers,
    migrate_or_exit,
    service_database_url,
    service_settings,
    settings_or_exit,
)
from libs.platform.service import ServiceDeclaration
from libs.platform.supervision import Supervisor

BROKER_PORT = 9092


@dataclass(frozen=True)
class PlatformProcess:
    name: str
    command: list[str]
    env: dict[str, str]
    url: str
    # Where it answers /readyz (None: the broker, which has no HTTP side).
    base_url: str | None = None


# How long a worker may take to answer its parent's first health ping (see serve).
WORKER_HEALTHCHECK_SECONDS = 60


def platform_processes(
    services: Sequence[ServiceDeclaration],
    *,
    database_url: str,
    bootstrap: str,
    ports: dict[str, int],
    broker_port: int | None,
    entry_module: str = "services.bootstrap",
    workers: Mapping[str, int] | None = None,
    migrated: bool = False,
) -> list[PlatformProcess]:
    """What ``crm run`` starts; the end-to-end tests start the same on free ports.

    ``workers``: processes per service (else each service's WORKERS setting);
    ``migrated``: the databases are at this code's schema already, so the services
    start without migrating.
    """
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
        if "gateway" in ports:
            # Events name schema URLs that resolve: the gateway serves every one.
            env.setdefault(
                "EVENT_SCHEMA_BASE_URL", f"http://127.0.0.1:{ports['gateway']}/events"
            )
        if workers and name in workers:
            env["WORKERS"] = str(workers[name])
        processes.append(
            PlatformProcess(
                name,
                [*crm, "serve", name, *(["--no-migrate"] if migrated else [])],
                env,
                f"http://127.0.0.1:{ports[name]}  (/docs, /metrics)  db {db}",
                f"http://127.0.0.1:{ports[name]}",
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
    declared = _declared_by_name(services)
    _add_run(app, services)
    _add_service_commands(app, services, declared)
    _add_tools(app)
    _add_recovery_commands(app, services, declared)
    return app


def _declared_by_name(
    services: Sequence[ServiceDeclaration],
) -> Callable[[str], ServiceDeclaration]:
    by_name = {service.name: service for service in services}

    def declared(name: str) -> ServiceDeclaration:
        if name not in by_name:
            raise typer.BadParameter(f"unknown service {name!r}; one of {', '.join(by_name)}")
        return by_name[name]

    return declared


def _add_run(app: typer.Typer, services: Sequence[ServiceDeclaration]) -> None:
    """``crm run``: the whole platform, supervised."""
    @app.command()
    def run() -> None:
        """Start the platform: broker (unless KAFKA_BOOTSTRAP_SERVERS is set) and every
        service, supervised: a process that dies is started again."""
        base_url = os.environ.get("DATABASE_URL", "")
        external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "")
        Path("var").mkdir(exist_ok=True)
        settings_or_exit(services)  # once, here: not in a restart loop of every service
        processes = platform_processes(
            services,
            database_url=base_url,
            bootstrap=external or f"127.0.0.1:{BROKER_PORT}",
            ports={service.name: service.port for service in services},
            broker_port=None if external else BROKER_PORT,
            workers={s.name: machine_workers(s, os.environ) for s in services},
            migrated=True,
        )
        wanted = {s.name: s.port for s in services}
        if not external:
            wanted["broker"] = BROKER_PORT
        taken = taken_ports(wanted)
        if taken:
            # Else the readiness check would answer for whatever holds the ports (often
            # an earlier `make run` still stopping) and say "ready" for services that
            # failed to start.
            listed = ", ".join(f"{port} ({name})" for name, port in taken.items())
            print(
                f"crm run: already in use on 127.0.0.1: {listed}. Is another `make run` "
                "still running? Stop it, or free these ports, and start again.",
                file=sys.stderr,
            )
            raise typer.Exit(1)
        postgres = postgres_databases(processes)
        if postgres:
            asyncio.run(create_postgres_databases(postgres))
        # Before any process starts: no two processes ever run DDL at the same time.
        migrate_or_exit([s for s in services if s.migrations])

        supervisor = Supervisor(processes, Path("var") / "supervisor")
        lines = [] if not external else [f"  broker        {external} (external)"]
        for process in processes:
            count = process.env.get("WORKERS") if process.name != "broker" else None
            scaled = "" if not count else " (1 worker)" if count == "1" else f" ({count} workers)"
            lines.append(f"  {process.name:<13} {process.url}{scaled}")
        print("customer-lifecycle platform:", *lines, sep="\n", flush=True)
        print("Ctrl-C stops everything. Waiting for every service to be ready...", flush=True)
        readiness = {p.name: f"{p.base_url}/readyz" for p in processes if p.base_url}
        gateway = next((p.base_url for p in processes if p.name == "gateway"), None)
        code = supervisor.run_until_stopped(readiness, gateway or "http://127.0.0.1:8000")
        sys.exit(code)


def _add_service_commands(
    app: typer.Typer,
    services: Sequence[ServiceDeclaration],
    declared: Callable[[str], ServiceDeclaration],
) -> None:
    """``crm migrate`` and ``crm serve``: one service's database and process."""
    @app.command()
    def migrate(
        service: Annotated[str | None, typer.Argument(help="default: every service")] = None,
    ) -> None:
        """Upgrade the service's database (or every service's) to this code's schema."""
        chosen = [declared(service)] if service else list(services)
        if service and chosen[0].migrations is None:
            raise typer.BadParameter(f"{service} has no database")
        chosen = [s for s in chosen if s.migrations]
        postgres = [
            url
            for url in (service_settings(s).database_url for s in chosen)
            if make_url(url).get_backend_name() == "postgresql"
        ]
        if postgres:
            asyncio.run(create_postgres_databases(postgres))
        migrate_or_exit(chosen)

    @app.command()
    def serve(
        service: str,
        port: Annotated[int | None, typer.Option(help="default: the service's HTTP_PORT")] = None,
        workers: Annotated[
            int | None, typer.Option(min=1, help="processes; default: the WORKERS setting, 1")
        ] = None,
        migrate: Annotated[
            bool, typer.Option(help="upgrade the database first (crm run did already)")
        ] = True,
    ) -> None:
        """Serve one service with uvicorn (its declared app factory), in one or more
        worker processes sharing its port."""
        import uvicorn

        import libs.platform.workers as workers_module

        declaration = declared(service)
        app = declaration.app
        settings_or_exit([declaration])
        settings = declaration.settings()
        if migrate and declaration.migrations is not None:
            # Here, before the workers exist: they only check the schema.
            migrate_or_exit([declaration], settings.database_url)
        count = workers or settings.workers
        os.environ["WORKERS"] = str(count)  # each worker's settings know their share
        metrics_dir = None
        if count > 1:
            # Each worker writes its metrics to files here; /metrics adds them up.
            # A fresh folder per start, so nothing of a previous run is counted.
            metrics_dir = tempfile.mkdtemp(prefix=f"crm-{service}-metrics-")
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
            # Workers that end with this process, should it be killed outright.
            os.environ.update({workers_module.APP: app, workers_module.PARENT: str(os.getpid())})
            app = "libs.platform.workers:create_app"
        try:
            uvicorn.run(
                app,
                factory=True,
                host=settings.http_host,
                port=port or int(os.environ.get("HTTP_PORT", declaration.port)),
                workers=count,
                loop="uvloop",
                http="httptools",
                access_log=False,  # the platform logs one JSON line per request itself
                log_level=settings.log_level.lower(),
                # A spawned worker imports every service's declaration before it can answer
                # the parent's health ping: on a busy machine (``crm run`` starts eight
                # services at once) that takes longer than uvicorn's 5 s, and the parent
                # would kill and respawn workers forever.
                timeout_worker_healthcheck=WORKER_HEALTHCHECK_SECONDS,
            )
        finally:
            if metrics_dir is not None:
                shutil.rmtree(metrics_dir, ignore_errors=True)


def _add_tools(app: typer.Typer) -> None:
    """``crm broker``, ``crm token``, ``crm schemas``: what local work needs."""
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
        """Print a bearer token signed with JWT_SECRET (unset: this install's key in var/)."""
        from libs.auth import issue_token
        from libs.platform.settings import ServiceSettings

        role_list = [r.strip() for r in roles.split(",") if r.strip()]
        print(issue_token(ServiceSettings().auth(), subject, tenant, role_list, ttl_seconds=ttl))

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


def _add_recovery_commands(
    app: typer.Typer,
    services: Sequence[ServiceDeclaration],
    declared: Callable[[str], ServiceDeclaration],
) -> None:
    """``crm republish`` and ``crm rebuild``: an operator's way back from a lost topic."""
    @app.command()
    def republish(service: str) -> None:
        """Publish a service's whole event store again (after a topic was lost), through
        the service's own relay: the same store, personal-data policy and topic."""
        from libs.platform.db import create_engine

        declaration = declared(service)
        from libs.platform.relay import service_relay
        from libs.platform.tracing import traced_command

        if declaration.publishes is None:
            raise typer.BadParameter(f"{service} publishes no events")
        settings = service_settings(declaration)

        async def go() -> int:
            engine = create_engine(settings.database_url)
            relay = service_relay(declaration, settings, engine)
            try:
                return await relay.republish_all()
            finally:
                await relay.close()
                await engine.dispose()

        with traced_command(declaration.name):
            count = asyncio.run(go())
        print(f"republished {count} events of {service}")

    @app.command()
    def rebuild(projection: str) -> None:
        """Rebuild a projection into a new generation and swap it in (the old one serves
        meanwhile)."""
        from libs.events.projection import rebuild as rebuild_projection
        from libs.platform.db import create_engine
        from libs.platform.tracing import traced_command

        owners = [s for s in services if projection in s.projections]
        if not owners:
            known = [name for s in services for name in s.projections]
            raise typer.BadParameter(f"no projection {projection!r}; one of {', '.join(known)}")
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

        with traced_command(owner.name):
            generation = asyncio.run(go())
        print(f"{projection}: generation {generation} is now active")
