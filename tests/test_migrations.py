"""Every service's migrations build the tables its code queries, on both backends;
``crm migrate`` upgrades the databases ``crm run`` uses; a database made before
migrations existed is taken over with its data."""

from __future__ import annotations

import asyncio
import importlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, MetaData, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from typer.testing import CliRunner

from libs.events.store import EventStore, events
from libs.platform.cli import build_cli, service_database_url
from libs.platform.db import create_engine
from libs.platform.migrations import Migrated, database_revision, head_revision, migrate
from libs.platform.service import ServiceDeclaration
from services.bootstrap import SERVICES
from services.contacts.read_model import customer_list
from services.customer360.read_model.tables import Tables

MIGRATED = [s for s in SERVICES if s.migrations is not None]


def target_of(service: ServiceDeclaration) -> MetaData:
    """The tables the service's code queries (its migrations package names them)."""
    package = importlib.import_module(f"services.{service.name}.migrations")
    merged = MetaData()
    for metadata in package.TARGET_METADATA:
        for table in metadata.tables.values():
            table.to_metadata(merged)
    return merged


def differences(conn: Connection, target: MetaData) -> list[Any]:
    return list(compare_metadata(MigrationContext.configure(conn), target))


def test_every_service_with_a_database_declares_its_migrations() -> None:
    assert {s.name for s in MIGRATED} >= {"contacts", "customer360", "gateway"}
    for service in MIGRATED:
        assert service.migrations is not None and (service.migrations / "env.py").exists()


@pytest.mark.parametrize("service", MIGRATED, ids=lambda s: s.name)
async def test_the_migrations_at_head_build_what_the_code_queries(
    service: ServiceDeclaration, any_url: str
) -> None:
    assert service.migrations is not None
    engine = create_engine(any_url)
    try:
        await migrate(engine, service.migrations)
        async with engine.connect() as conn:
            found = await conn.run_sync(differences, target_of(service))
    finally:
        await engine.dispose()
    assert found == []


async def test_a_database_made_before_migrations_is_taken_over_with_its_data(
    any_url: str,
) -> None:
    """Tables created at start-up by the previous release: stamped at the first
    revision (not created again) and upgraded, every row kept."""
    engine = create_engine(any_url)
    try:
        store = EventStore(engine)
        await store.create_tables()
        async with engine.begin() as conn:
            await conn.run_sync(customer_list.metadata.create_all)
            # That release's events had no trace context (a later revision adds it).
            for column in ("traceparent", "tracestate"):
                await conn.exec_driver_sql(f"ALTER TABLE events DROP COLUMN {column}")
        async with engine.begin() as conn:
            await conn.execute(
                events.insert().values(
                    event_id="e-1", tenant_id="acme", stream_id="c-1", version=1,
                    type="crm.contacts.customer_registered.v1", partition_key="c-1",
                    data={"name": "王芳"}, occurred_at=_now(), recorded_at=_now(),
                )
            )
        folder = _contacts().migrations
        assert folder is not None

        migrated = await migrate(engine, folder)

        assert migrated.before is None and migrated.after == head_revision(folder)
        async with engine.connect() as conn:
            assert (await conn.execute(select(func.count()).select_from(events))).scalar() == 1
    finally:
        await engine.dispose()


async def test_two_processes_upgrading_at_once_take_turns(any_url: str) -> None:
    """Replicas starting together: one migrates, the other finds nothing left to do."""
    folder = _contacts().migrations
    assert folder is not None
    engines = [create_engine(any_url), create_engine(any_url)]
    try:
        outcomes = await asyncio.gather(*(migrate(engine, folder) for engine in engines))
    finally:
        for engine in engines:
            await engine.dispose()
    head = head_revision(folder)
    assert sorted(outcomes, key=lambda m: m.before or "") == [
        Migrated(None, head),
        Migrated(head, head),
    ]


async def test_a_360_timeline_made_before_its_lines_held_facts_gains_them_with_its_rows(
    any_url: str,
) -> None:
    """A generation's tables are the projection's, not a revision's: the revision finds
    the timeline tables that exist and adds the columns, keeping every line."""
    old = MetaData()
    Tables.of(3, old)
    timeline = old.tables["customer360_timeline_g3"]
    timeline._columns.remove(timeline.c.facts)
    service = next(s for s in SERVICES if s.name == "customer360")
    assert service.migrations is not None
    engine = create_engine(any_url)
    try:
        await migrate(engine, service.migrations, to="0002")
        async with engine.begin() as conn:
            await conn.run_sync(old.create_all)
            await conn.execute(timeline.insert().values(
                tenant_id="acme", customer_id="c-1", event_id="e-1", type="t",
                occurred_at=_now(), sequence=1, topic="crm.contacts.events",
                summary="Registered person", redacted_summary="Registered person"))
        await migrate(engine, service.migrations)
        new = Tables.of(3).timeline
        async with engine.connect() as conn:
            rows = (await conn.execute(select(new.c.summary, new.c.facts))).all()
    finally:
        await engine.dispose()
    assert [tuple(row) for row in rows] == [("Registered person", None)]


def _contacts() -> ServiceDeclaration:
    return next(s for s in SERVICES if s.name == "contacts")


def _now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


# --- crm migrate -----------------------------------------------------------------


@pytest.fixture
def platform_database(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """DATABASE_URL as ``crm run`` reads it; the services' databases derive from it."""
    if request.param == "sqlite":
        base = f"sqlite+aiosqlite:///{tmp_path / 'var' / 'crm.db'}"
    else:
        server = request.getfixturevalue("postgres_server")
        database = f"crm_cli_{uuid.uuid4().hex[:12]}"
        base = make_url(server).set(database=database).render_as_string(hide_password=False)
    monkeypatch.setenv("DATABASE_URL", base)
    yield base
    if request.param == "postgresql":
        asyncio.run(_drop_service_databases(server, base))


async def _drop_service_databases(server: str, base: str) -> None:
    admin = await asyncpg.connect(server)
    try:
        for service in SERVICES:
            name = make_url(service_database_url(base, service.name)).database
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def revisions(base: str) -> dict[str, str | None]:
    found = {}
    for service in MIGRATED:
        engine = create_engine(service_database_url(base, service.name))
        try:
            found[service.name] = await database_revision(engine)
        except DBAPIError:
            found[service.name] = None  # its database was never created
        finally:
            await engine.dispose()
    return found


@pytest.mark.parametrize("platform_database", ["postgresql", "sqlite"], indirect=True)
def test_crm_migrate_upgrades_one_service_or_every_one(platform_database: str) -> None:
    cli = CliRunner()
    app = build_cli(SERVICES)

    one = cli.invoke(app, ["migrate", "contacts"])

    assert one.exit_code == 0, one.output
    assert "contacts: schema empty -> " in one.output
    heads = {s.name: head_revision(s.migrations) for s in MIGRATED if s.migrations}
    assert asyncio.run(revisions(platform_database)) == {
        name: heads[name] if name == "contacts" else None for name in heads
    }

    every = cli.invoke(app, ["migrate"])

    assert every.exit_code == 0, every.output
    assert asyncio.run(revisions(platform_database)) == heads
    assert "contacts: schema at " in every.output and "(nothing to do)" in every.output


def test_crm_migrate_names_a_service_it_does_not_know() -> None:
    result = CliRunner().invoke(build_cli(SERVICES), ["migrate", "nobody"])
    assert result.exit_code != 0
    assert "unknown service 'nobody'" in result.output


@pytest.mark.parametrize("platform_database", ["sqlite"], indirect=True)
def test_crm_migrate_refuses_a_schema_newer_than_the_code(platform_database: str) -> None:
    app = build_cli(SERVICES)
    assert CliRunner().invoke(app, ["migrate", "contacts"]).exit_code == 0
    asyncio.run(_set_revision(service_database_url(platform_database, "contacts"), "9999_future"))

    result = CliRunner().invoke(app, ["migrate", "contacts"])

    assert result.exit_code == 1
    folder = _contacts().migrations
    assert folder is not None
    assert "9999_future" in result.output and head_revision(folder) in result.output


async def _set_revision(url: str, revision: str) -> None:
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("UPDATE alembic_version SET version_num = :r"), {"r": revision})
    finally:
        await engine.dispose()
