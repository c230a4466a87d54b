"""What ``crm`` checks before a service process starts: the settings it will read (a
refusal is one clear line, not a restart loop of tracebacks) and its database's schema.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import typer
from sqlalchemy.engine import make_url

from libs.platform.service import ServiceDeclaration


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


def service_settings(service: ServiceDeclaration) -> Any:
    """The settings a service process of ``crm run`` gets: its own database under the
    platform's ``DATABASE_URL`` (``crm_contacts`` on PostgreSQL, ``var/contacts.db``)."""
    database = service_database_url(os.environ.get("DATABASE_URL", ""), service.name)
    return service.settings(database_url=database)


def settings_or_exit(chosen: Sequence[ServiceDeclaration]) -> None:
    """Each service's settings as its process will read them, or the reason they are
    refused and exit 1. On the embedded default this also makes the install's token
    key, before any two processes race to."""
    from pydantic import ValidationError

    for service in chosen:
        try:
            service_settings(service)
        except ValidationError as refused:
            errors = refused.errors()
            reasons = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in errors)
            print(f"crm: {service.name} cannot start: {reasons}", file=sys.stderr)
            raise typer.Exit(1) from None


def migrate_or_exit(chosen: Sequence[ServiceDeclaration], database_url: str | None = None) -> None:
    """Upgrade each service's database (at ``database_url``, else where ``crm run``
    puts it), one line each; a schema this code cannot serve ends the command."""
    from libs.platform.db import create_engine
    from libs.platform.migrations import SchemaMismatch, describe, migrate

    async def upgrade(url: str, folder: Path) -> str:
        engine = create_engine(url, pool_size=1)
        try:
            return describe(await migrate(engine, folder))
        finally:
            await engine.dispose()

    for service in chosen:
        assert service.migrations is not None
        url = database_url or service_settings(service).database_url
        try:
            print(f"{service.name}: schema {asyncio.run(upgrade(url, service.migrations))}")
        except SchemaMismatch as refused:
            print(f"{service.name}: {refused}", file=sys.stderr)
            raise typer.Exit(1) from refused


def machine_workers(service: ServiceDeclaration, environ: Mapping[str, str]) -> int:
    """Worker processes ``crm run`` gives a service: ``<NAME>_WORKERS``, else
    ``WORKERS``, else what the service asks for, bounded by the machine's cores."""
    for setting in (f"{service.env_prefix}_WORKERS", "WORKERS"):
        if environ.get(setting, "").strip():
            return max(1, int(environ[setting]))
    return max(1, min(service.workers, os.cpu_count() or 1))


async def create_postgres_databases(urls: list[str]) -> None:
    """Each PostgreSQL database named, created if it does not exist yet."""
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
