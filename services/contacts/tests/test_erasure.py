"""Erasure: the person's data is gone from every place this service keeps it."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import select, text

from libs.events.kafka import KafkaSettings
from libs.events.store import events, personal_data_keys
from libs.platform.db import create_engine
from services.contacts.tests.conftest import Api, read_topic

CUSTOMERS = "/api/v1/customers"
NAME = "欧阳娜娜"
EMAIL = "nana.ouyang@example.com"
PHONE = "13812345678"
SECRETS = (NAME, EMAIL, "13812345678", "1988-02-03", "talked about her divorce", "Nana O.")


async def raw_tables(api: Api) -> dict[str, list[str]]:
    """Every row of every table, as text: what a database dump would show."""
    engine = create_engine(api.settings.database_url)
    try:
        async with engine.connect() as conn:
            tables = await conn.scalars(
                text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            )
            dump: dict[str, list[str]] = {}
            for table in tables:
                rows = await conn.execute(text(f'SELECT * FROM "{table}"'))
                dump[table] = [json.dumps([str(v) for v in row], ensure_ascii=False)
                               for row in rows]
            return dump
    finally:
        await engine.dispose()


def leaks(dump: dict[str, list[str]] | str) -> list[str]:
    text_ = json.dumps(dump, ensure_ascii=False) if not isinstance(dump, str) else dump
    return [s for s in SECRETS if s in text_]


async def test_erasure_removes_the_person_from_reads_history_export_and_the_raw_store(
    api: Api, kafka: KafkaSettings
) -> None:
    await api.client.put(
        "/api/v1/custom-fields/nickname", json={"type": "text"}, headers=api.auth()
    )
    customer = await api.register(
        name=NAME, email=EMAIL, birthday="1988-02-03", attributes={"nickname": "Nana O."},
        tags=["vip"],
    )
    duplicate = await api.register(name=NAME, phone=PHONE, register_anyway=True)
    await api.client.post(
        f"{CUSTOMERS}/{customer}/interactions",
        json={"channel": "visit", "direction": "outbound", "summary": "talked about her divorce"},
        headers=api.auth(),
    )
    await api.client.post(
        f"{CUSTOMERS}/{customer}/merge", json={"duplicate_id": duplicate}, headers=api.auth()
    )
    assert leaks(await api.get(customer))  # the data really was there
    # Sealed at rest from the start: the raw event data never holds it in clear.
    engine = create_engine(api.settings.database_url)
    async with engine.connect() as conn:
        raw_events = [json.dumps(d, ensure_ascii=False)
                      for d in await conn.scalars(select(events.c.data))]
    assert not leaks(" ".join(raw_events))

    erased = await api.client.delete(
        f"{CUSTOMERS}/{duplicate}/personal-data", headers=api.auth()
    )

    assert erased.status_code == 200, erased.text
    assert erased.json()["id"] == customer
    assert sorted(erased.json()["erased_ids"]) == sorted([customer, duplicate])
    profile = await api.get(customer)
    assert profile["erased"] is True
    assert profile["name"] == ""
    assert (profile["email"], profile["phone"], profile["birthday"]) == (None, None, None)
    assert profile["attributes"] == {}
    assert profile["tags"] == ["vip"]  # what is not personal stays for the statistics
    assert not leaks(profile)
    for q in ("ouyang", "oynn", "nana.ouyang", "13812345678"):
        assert await api.search(q=q) == []
    history = await api.client.get(f"{CUSTOMERS}/{customer}/history", headers=api.auth())
    assert history.status_code == 200
    assert not leaks(history.text)
    assert history.json()["events"][-1]["type"] == "crm.contacts.personal_data_erased.v1"
    export = await api.client.get(f"{CUSTOMERS}/{customer}/export", headers=api.auth())
    assert export.status_code == 200
    assert not leaks(export.text)
    assert not leaks(await raw_tables(api))
    async with engine.connect() as conn:
        keys = (await conn.execute(
            select(personal_data_keys.c.subject_id, personal_data_keys.c.key)
        )).all()
    await engine.dispose()
    assert {s for s, k in keys if k is None} == {customer, duplicate}

    published = await read_topic(
        kafka,
        lambda seen: sum(p.type.endswith("personal_data_erased.v1") for p in seen) >= 2,
    )
    erasures = [p for p in published if p.type.endswith("personal_data_erased.v1")]
    assert sorted(p.key.decode() for p in erasures) == sorted([customer, duplicate])
    assert erasures[0].data["by"] == "u-1"


async def test_after_erasure_writes_are_gone_and_the_email_is_free_again(api: Api) -> None:
    customer = await api.register(name=NAME, email=EMAIL)

    first = await api.client.delete(f"{CUSTOMERS}/{customer}/personal-data", headers=api.auth())
    again = await api.client.delete(f"{CUSTOMERS}/{customer}/personal-data", headers=api.auth())
    patch = await api.client.patch(
        f"{CUSTOMERS}/{customer}", json={"name": "Back again"}, headers=api.auth()
    )

    assert first.status_code == 200
    assert again.status_code == 200
    assert again.json()["version"] == first.json()["version"]
    assert patch.status_code == 410
    assert await api.register(name="Someone new", email=EMAIL)


async def test_only_an_admin_may_erase_and_if_match_applies(api: Api) -> None:
    customer = await api.register(name=NAME)

    manager = await api.client.delete(
        f"{CUSTOMERS}/{customer}/personal-data", headers=api.auth(roles=["manager"])
    )
    stale = await api.client.delete(
        f"{CUSTOMERS}/{customer}/personal-data", headers={**api.auth(), "If-Match": '"7"'}
    )

    assert manager.status_code == 403
    assert stale.status_code == 412
    assert (await api.get(customer))["name"] == NAME


async def test_an_erased_customer_leaves_no_bytes_in_the_sqlite_files(
    sqlite_api: Api, tmp_path: Path
) -> None:
    # ASCII on purpose: found in the raw bytes whatever encoding a column uses.
    traces = (b"quillfeather", b"nadia.q@example.com", b"7911123456", b"her divorce")

    def traces_in_files() -> dict[str, list[bytes]]:
        found: dict[str, list[bytes]] = {}
        for file in sorted(tmp_path.iterdir()):
            content = file.read_bytes().lower()
            if hits := [trace for trace in traces if trace in content]:
                found[file.name] = hits
        return found

    api = sqlite_api
    customer = await api.register(
        name="Nadia Quillfeather", email="nadia.q@example.com", phone="+44 7911 123456"
    )
    for n in range(20):  # neighbours on the same pages
        await api.register(name=f"Neighbour {n}")
    await api.client.post(
        f"{CUSTOMERS}/{customer}/interactions",
        json={"channel": "visit", "direction": "outbound", "summary": "talked about her divorce"},
        headers=api.auth(),
    )
    # In clear in the read model (and in the log) before the erasure.
    assert traces_in_files()

    erased = await api.client.delete(f"{CUSTOMERS}/{customer}/personal-data", headers=api.auth())

    assert erased.status_code == 200, erased.text
    assert traces_in_files() == {}


async def test_a_merge_and_an_erasure_name_the_event_that_caused_each_consequence(
    api: Api,
) -> None:
    survivor = await api.register(name="Lin Fang", email="lin.fang@example.com")
    duplicate = await api.register(name="Lin Fang", register_anyway=True)
    await api.client.post(
        f"{CUSTOMERS}/{survivor}/merge", json={"duplicate_id": duplicate}, headers=api.auth()
    )
    erased = await api.client.delete(f"{CUSTOMERS}/{survivor}/personal-data", headers=api.auth())
    assert erased.status_code in (200, 204), erased.text

    engine = create_engine(api.settings.database_url)
    try:
        async with engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(events.c.stream_id, events.c.type, events.c.event_id,
                           events.c.causation_id)
                    .where(events.c.stream_id.in_([survivor, duplicate]))
                )
            ).all()
    finally:
        await engine.dispose()
    by_type = {(row.stream_id, row.type.split(".")[2]): row for row in rows}

    merged = by_type[survivor, "customer_merged"]
    assert by_type[duplicate, "customer_merged_into"].causation_id == merged.event_id
    asked = by_type[survivor, "personal_data_erased"]
    assert asked.causation_id is None  # caused by the request, named by its correlation id
    assert by_type[duplicate, "personal_data_erased"].causation_id == asked.event_id
