"""Schema migrations: one Alembic history per service database.

A service keeps its history in ``services/<name>/migrations/`` (``env.py`` calling
:func:`run_migrations`, and ``versions/``) and names that folder in its declaration.
``crm migrate`` and ``crm serve`` upgrade before any worker process starts; a starting
process only checks, and migrates nothing but an empty database (docs/decisions/0021).

Every upgrade runs in one transaction under one lock (an advisory lock on PostgreSQL,
SQLite's own write lock), so two processes upgrading at once run one after the other
and the second finds nothing left to do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, MetaData, inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine

# Any number will do as long as it is the same for every process of the service.
_MIGRATION_LOCK = "crm-schema-migrations"


class SchemaMismatch(RuntimeError):
    """The database's schema is not the one this code was written for."""

    def __init__(self, message: str, *, database: str | None, code: str) -> None:
        super().__init__(message)
        self.database = database
        self.code = code


class SchemaNewerThanCode(SchemaMismatch):
    """The database was migrated by a newer release: this code must not write to it."""


class SchemaBehindCode(SchemaMismatch):
    """The database has not been migrated to this code's revision yet."""


@dataclass(frozen=True, slots=True)
class Migrated:
    before: str | None
    after: str | None


def history(folder: Path) -> ScriptDirectory:
    return ScriptDirectory.from_config(_config(folder))


def head_revision(folder: Path) -> str:
    head = history(folder).get_current_head()
    if head is None:
        raise ValueError(f"{folder} holds no migration")
    return head


def first_revision(folder: Path) -> str:
    base = history(folder).get_base()
    if base is None:
        raise ValueError(f"{folder} holds no migration")
    return base


async def database_revision(engine: AsyncEngine) -> str | None:
    """The revision the database was migrated to (None: never migrated)."""
    async with engine.connect() as conn:
        return await conn.run_sync(_revision_of)


async def migrate(engine: AsyncEngine, folder: Path, *, to: str = "head") -> Migrated:
    """Upgrade the database to ``to`` (this code's head unless told), in one transaction."""
    async with engine.connect() as conn:
        migrated = await conn.run_sync(_upgrade, folder, to)
        await conn.commit()
    return migrated


async def prepare_schema(engine: AsyncEngine, folder: Path) -> None:
    """What a starting process does before it serves: nothing if the schema is this
    code's; migrate an empty database (a first start, a test's fresh database);
    refuse any other revision, naming both."""
    head = head_revision(folder)
    current = await database_revision(engine)
    if current == head:
        return
    if current is None:
        await migrate(engine, folder)
        return
    _refuse_newer(history(folder), current, head)
    raise SchemaBehindCode(
        f"the database schema is at revision {current}, behind this code's {head}: "
        "run `crm migrate` first",
        database=current,
        code=head,
    )


def run_migrations(
    *, target_metadata: Sequence[MetaData] | MetaData | None = None, routines: Sequence[str] = ()
) -> None:
    """The body of every service's ``env.py``: migrate on the connection that
    :func:`migrate` holds (inside its transaction and lock), then install the
    PostgreSQL routines again so they are always the code's."""
    from alembic import context

    connection: Connection | None = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("migrations run through `crm migrate` (libs.platform.migrations)")
    context.configure(
        connection=connection,
        target_metadata=(
            list(target_metadata) if isinstance(target_metadata, Sequence) else target_metadata
        ),
        render_as_batch=True,  # SQLite alters a table by copying it
    )
    with context.begin_transaction():
        context.run_migrations()
    if connection.dialect.name == "postgresql":
        for routine in routines:
            connection.exec_driver_sql(routine)


def _config(folder: Path, connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(folder))
    config.attributes["connection"] = connection
    return config


def _upgrade(conn: Connection, folder: Path, target: str) -> Migrated:
    # The lock's statement also begins the transaction everything below runs in
    # (on SQLite the engine begins with BEGIN IMMEDIATE: the database's write lock).
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": _MIGRATION_LOCK})
    else:
        conn.execute(text("SELECT 1"))
    config = _config(folder, conn)
    scripts = ScriptDirectory.from_config(config)
    before = MigrationContext.configure(conn).get_current_revision()
    head = scripts.get_current_head()
    if before is not None and head is not None:
        _refuse_newer(scripts, before, head)
    elif before is None and _holds_tables(conn):
        # Made before migrations existed (tables created at start-up): those tables are
        # the first revision's, so the history starts there instead of creating them.
        command.stamp(config, scripts.get_base() or "base")
    command.upgrade(config, target)
    return Migrated(before, MigrationContext.configure(conn).get_current_revision())


def _revision_of(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def _holds_tables(conn: Connection) -> bool:
    return bool(inspect(conn).get_table_names())


def _refuse_newer(scripts: ScriptDirectory, current: str, head: str) -> None:
    if _known(scripts, current):
        return
    raise SchemaNewerThanCode(
        f"the database schema is at revision {current}, newer than this code's {head}: "
        "run the release that migrated it (or a later one)",
        database=current,
        code=head,
    )


def _known(scripts: ScriptDirectory, revision: str) -> bool:
    try:
        return scripts.get_revision(revision) is not None
    except Exception:  # alembic raises its own error for an id it has never seen
        return False


def describe(migrated: Migrated) -> str:
    if migrated.before == migrated.after:
        return f"at {migrated.after} (nothing to do)"
    return f"{migrated.before or 'empty'} -> {migrated.after}"

