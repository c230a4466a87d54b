"""The duplicate-customer rules, one table run over every path a registration can take.

The rule lives twice: in Python (the statement-by-statement path, which every SQLite
registration and a tenant's first registration on PostgreSQL take) and in the
``contacts_register`` routine (PostgreSQL, once the tenant's custom fields are known).
As pyeventsourcing runs one suite per storage adapter, each rule below runs over all
three paths, so a rule changed or dropped on one path fails here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from libs.events.kafka import KafkaSettings
from services.contacts.app import create_app
from services.contacts.handlers.customers import Contacts
from services.contacts.read_model import registration_routine
from services.contacts.settings import Settings
from services.contacts.tests.conftest import SECRET, Api

CUSTOMERS = "/api/v1/customers"
PATHS = ("statements-sqlite", "statements-postgresql", "routine-postgresql")
# ``holder``: any of the given customers. Both paths name the lowest id, and "lowest"
# follows the database's collation (binary on SQLite, the locale's on PostgreSQL).
ANY_OF_THEM = -1


@dataclass(frozen=True)
class Rule:
    """Given these customers (tenant, body), registering ``then`` answers ``status``;
    a 409 names ``field`` and the holder (the index of the given customer)."""

    given: list[tuple[str, dict[str, Any]]]
    then: dict[str, Any]
    status: int
    field: str | None = None
    holder: int | None = None
    tenant: str = "acme"


RULES = {
    "same email in another case": Rule(
        [("acme", {"email": "taken@example.com"})],
        {"email": "TAKEN@Example.com"},
        409,
        "email",
        0,
    ),
    "same phone written another way": Rule(
        [("acme", {"phone": "138 0013 8000"})],
        {"phone": "+86 13800138000"},
        409,
        "phone",
        0,
    ),
    "email held by one, phone by another: the email's holder is named": Rule(
        [("acme", {"phone": "13900000002"}), ("acme", {"email": "e@example.com"})],
        {"email": "e@example.com", "phone": "13900000002"},
        409,
        "email",
        1,
    ),
    "of two holders one is named, the same one every time": Rule(
        [
            ("acme", {"email": "two@example.com"}),
            ("acme", {"email": "two@example.com", "register_anyway": True}),
        ],
        {"email": "two@example.com"},
        409,
        "email",
        ANY_OF_THEM,
    ),
    "register anyway": Rule(
        [("acme", {"email": "again@example.com"})],
        {"email": "again@example.com", "register_anyway": True},
        201,
    ),
    "another tenant's customer is no duplicate": Rule(
        [("globex", {"email": "shared@example.com", "phone": "13700000003"})],
        {"email": "shared@example.com", "phone": "13700000003"},
        201,
    ),
    "neither email nor phone: never a duplicate": Rule(
        [("acme", {"email": "x@example.com"})],
        {},
        201,
    ),
}


@dataclass
class Registrar:
    api: Api
    contacts: Contacts
    path: str

    async def register(self, tenant: str, body: dict[str, Any]) -> httpx.Response:
        if self.path == "statements-postgresql":
            self.contacts.known_custom_fields.clear()  # cold: the routine is not taken
        elif self.path == "routine-postgresql" and tenant not in self.contacts.known_custom_fields:
            warm = await self.api.client.post(
                CUSTOMERS, json={"kind": "person", "name": "Warm"}, headers=self.api.auth(tenant)
            )
            assert warm.status_code == 201, warm.text
        return await self.api.client.post(
            CUSTOMERS,
            json={"kind": "person", "name": "客户", **body},
            headers=self.api.auth(tenant),
        )


@pytest.fixture(params=PATHS)
def path_and_database(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    path: str = request.param
    if path.endswith("sqlite"):
        return path, f"sqlite:///{tmp_path / 'contacts.db'}"
    return path, str(request.getfixturevalue("pg_url"))


@pytest.fixture
async def registrar(
    path_and_database: tuple[str, str], kafka: KafkaSettings
) -> AsyncIterator[Registrar]:
    path, database = path_and_database
    settings = Settings(
        database_url=database,
        kafka_bootstrap_servers=kafka.bootstrap_servers,
        kafka_partitions=kafka.partitions,
        jwt_secret=SecretStr(SECRET),
        log_level="WARNING",
    )
    app: FastAPI = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://contacts") as client:
            yield Registrar(Api(client, settings), app.state.contacts, path)


@pytest.mark.parametrize("rule", list(RULES.values()), ids=list(RULES))
async def test_duplicate_rule(registrar: Registrar, rule: Rule) -> None:
    holders = []
    for tenant, body in rule.given:
        given = await registrar.register(tenant, body)
        assert given.status_code == 201, given.text
        holders.append(given.json()["id"])

    answer = await registrar.register(rule.tenant, rule.then)

    assert answer.status_code == rule.status, answer.text
    if rule.status == 409:
        assert rule.holder is not None
        assert answer.json()["field"] == rule.field
        named = answer.json()["existing_id"]
        if rule.holder == ANY_OF_THEM:
            assert named in holders
            again = await registrar.register(rule.tenant, rule.then)
            assert again.json()["existing_id"] == named
        else:
            assert named == holders[rule.holder]


async def test_each_path_is_the_one_it_claims_to_be(
    registrar: Registrar, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Otherwise the table above could run one path three times and prove nothing.
    calls = []
    routine = registration_routine.register

    async def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return await routine(*args, **kwargs)

    monkeypatch.setattr(registration_routine, "register", counted)
    answer = await registrar.register("acme", {"email": "probe@example.com"})

    assert answer.status_code == 201
    assert bool(calls) == (registrar.path == "routine-postgresql")
