"""The contacts database keeps its data across schema upgrades, and a process refuses
a schema newer than its code."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text

from libs.events.catalog.contacts import PERSONAL_DATA
from libs.events.store import EventStore, events, personal_data_keys
from libs.platform.db import create_engine
from libs.platform.migrations import (
    SchemaNewerThanCode,
    database_revision,
    first_revision,
    head_revision,
    migrate,
)
from services.contacts.app import create_app
from services.contacts.commands import RegisterCustomer
from services.contacts.handlers.customers import Contacts, register_customer
from services.contacts.migrations import FOLDER
from services.contacts.read_model import customer_list
from services.contacts.settings import Settings
from services.contacts.tests.conftest import Api

CUSTOMERS: list[dict[str, Any]] = [
    {"customer_id": "c-1", "name": "王芳", "email": "wang@example.com", "tags": ["vip"]},
    {"customer_id": "c-2", "name": "Li Lei", "phone": "138 0013 8000", "owner_id": "sales-1"},
    {"customer_id": "c-3", "name": "张伟", "email": "zhang@example.com"},
]


async def counts(engine: Any) -> dict[str, int]:
    tables = {
        "events": events,
        "personal_data_keys": personal_data_keys,
        **{t.name: t for t in customer_list.metadata.sorted_tables},
    }
    async with engine.connect() as conn:
        return {
            name: int((await conn.execute(select(func.count()).select_from(t))).scalar_one())
            for name, t in tables.items()
        }


async def test_customers_registered_at_the_first_revision_read_the_same_at_head(
    settings: Settings, api_at_head: Any
) -> None:
    engine = create_engine(settings.database_url)
    try:
        assert await migrate(engine, FOLDER, to=first_revision(FOLDER))
        # Written by the handlers as they stand (the first revision's schema is today's).
        # When a migration changes what they write, write these rows as that revision
        # knew them instead.
        contacts = Contacts(store=EventStore(engine, personal_data=PERSONAL_DATA))
        for customer in CUSTOMERS:
            await register_customer(
                contacts, RegisterCustomer(tenant_id="acme", kind="person", **customer)
            )
        before = await counts(engine)

        migrated = await migrate(engine, FOLDER)

        assert migrated.after == head_revision(FOLDER)
        assert await counts(engine) == before
    finally:
        await engine.dispose()
    assert before["events"] == len(CUSTOMERS) and before["contacts_customers"] == len(CUSTOMERS)

    api: Api = await api_at_head()
    for customer in CUSTOMERS:
        seen = await api.get(customer["customer_id"])
        assert seen["name"] == customer["name"]  # opened with its personal data key
        assert seen["version"] == 1
    assert [c["id"] for c in await api.search(tag="vip")] == ["c-1"]
    assert [c["id"] for c in await api.search(owner="sales-1")] == ["c-2"]
    # The service goes on where the old data left off: a duplicate is still one.
    response = await api.client.post(
        "/api/v1/customers",
        json={"kind": "person", "name": "W", "email": "wang@example.com"},
        headers=api.auth(),
    )
    assert response.status_code == 409, response.text


SECOND_REVISION = """
import sqlalchemy as sa
from alembic import op

revision = "0002_rehearsal"
down_revision = "{down}"


def upgrade() -> None:
    # Rebuilt as a copy on every backend (SQLite's only way to alter most things).
    with op.batch_alter_table("contacts_customers", recreate="always") as batch:
        batch.add_column(
            sa.Column("segment", sa.String(32), nullable=False, server_default="none")
        )
"""


async def test_an_upgrade_that_rebuilds_a_table_keeps_every_row(
    any_url: str, tmp_path: Path
) -> None:
    """A rehearsal of the next release: a copy of the history with one more revision
    that rebuilds the customers table, over a database holding customers."""
    history = tmp_path / "migrations"
    shutil.copytree(FOLDER, history, ignore=shutil.ignore_patterns("__pycache__"))
    (history / "versions" / "0002_rehearsal.py").write_text(
        SECOND_REVISION.format(down=head_revision(FOLDER))
    )
    engine = create_engine(any_url)
    try:
        await migrate(engine, history, to=head_revision(FOLDER))
        contacts = Contacts(store=EventStore(engine, personal_data=PERSONAL_DATA))
        for customer in CUSTOMERS:
            await register_customer(
                contacts, RegisterCustomer(tenant_id="acme", kind="person", **customer)
            )
        before = await counts(engine)

        migrated = await migrate(engine, history)

        assert migrated.after == "0002_rehearsal"
        assert await counts(engine) == before
        async with engine.connect() as conn:
            rows = (
                await conn.execute(text("SELECT customer_id, segment FROM contacts_customers"))
            ).all()
        assert sorted(rows) == [(c["customer_id"], "none") for c in CUSTOMERS]
    finally:
        await engine.dispose()


async def test_a_service_refuses_a_schema_newer_than_its_code(settings: Settings) -> None:
    engine = create_engine(settings.database_url)
    try:
        await migrate(engine, FOLDER)
        async with engine.begin() as conn:
            await conn.execute(text("UPDATE alembic_version SET version_num = '9999_future'"))
    finally:
        await engine.dispose()

    app = create_app(settings)
    with pytest.raises(SchemaNewerThanCode) as refused:
        async with app.router.lifespan_context(app):
            pytest.fail("the service started on a schema newer than its code")

    message = str(refused.value)
    assert "9999_future" in message and head_revision(FOLDER) in message
    engine = create_engine(settings.database_url)
    try:
        assert await database_revision(engine) == "9999_future"  # left as it was
        with pytest.raises(SchemaNewerThanCode):
            await migrate(engine, FOLDER)
    finally:
        await engine.dispose()


async def test_a_fresh_database_is_migrated_when_the_service_starts(
    settings: Settings, api: Api
) -> None:
    engine = create_engine(settings.database_url)
    try:
        assert await database_revision(engine) == head_revision(FOLDER)
    finally:
        await engine.dispose()
    assert await api.register(email="first@example.com")


@pytest.fixture
async def api_at_head(settings: Settings) -> Any:
    """The app and its client, started when the test asks (after it migrated)."""
    import contextlib

    import httpx

    stack = contextlib.AsyncExitStack()

    async def start() -> Api:
        app = create_app(settings)
        await stack.enter_async_context(app.router.lifespan_context(app))
        client = await stack.enter_async_context(
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://contacts")
        )
        return Api(client, settings)

    async with stack:
        yield start
