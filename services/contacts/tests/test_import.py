"""CSV import over HTTP: the report, encodings, mappings, re-runs, and a bulk file.

An import is a job (test_import_jobs.py covers the job itself): each test here
submits a file and reads the report of the job once it has succeeded.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import func, select

from libs.events.store import events
from libs.platform.db import create_engine
from services.contacts.tests.conftest import Api, eventually

IMPORT = "/api/v1/customers/import"

MAPPING = {
    "name": "客户名称",
    "email": "邮箱",
    "phone": "手机",
    "tags": "标签",
    "registered_at": "注册时间",
    "kind": "类型",
}
HEADER = "客户名称,邮箱,手机,标签,注册时间,类型\n"


async def upload(
    api: Api,
    content: bytes,
    *,
    mapping: dict[str, str] | None = MAPPING,
    tenant: str = "acme",
    roles: tuple[str, ...] = ("manager",),
    headers: dict[str, str] | None = None,
    **form: str,
) -> Any:
    """The answer to the submission (202 and the job, or why it was refused)."""
    data = dict(form)
    if mapping is not None:
        data["mapping"] = json.dumps(mapping, ensure_ascii=False)
    return await api.client.post(
        IMPORT,
        files={"file": ("customers.csv", content, "text/csv")},
        data=data,
        headers={**api.auth(tenant, roles), **(headers or {})},
    )


async def finished(api: Api, location: str, tenant: str = "acme") -> dict[str, Any]:
    """The job at ``location`` once it has succeeded or failed."""
    job: dict[str, Any] = {}

    async def done() -> bool:
        nonlocal job
        response = await api.client.get(location, headers=api.auth(tenant, ("manager",)))
        assert response.status_code == 200, response.text
        job = response.json()
        return job["status"] in ("succeeded", "failed")

    await eventually(done, timeout=60)
    return job


async def imported(
    api: Api, content: bytes, *, tenant: str = "acme", **options: Any
) -> dict[str, Any]:
    """The report of importing ``content``: submitted, then polled until done."""
    response = await upload(api, content, tenant=tenant, **options)
    assert response.status_code == 202, response.text
    job = await finished(api, response.headers["Location"], tenant)
    assert job["status"] == "succeeded", job
    report: dict[str, Any] = job["report"]
    return report


async def count_events(api: Api) -> int:
    engine = create_engine(api.settings.database_url)
    try:
        async with engine.connect() as conn:
            return int(await conn.scalar(select(func.count()).select_from(events)) or 0)
    finally:
        await engine.dispose()


async def test_the_report_lists_created_duplicates_and_errors_and_good_rows_go_in(
    api: Api,
) -> None:
    existing = await api.register(name="老客户", email="old@example.com")
    csv_text = HEADER + (
        "张伟,zhang.wei@example.com,13800138000,VIP；北京,2015-03-01 09:30,个人\n"  # row 2
        "李娜,not-an-email,,,2016-01-01,person\n"  # row 3: bad email
        "王芳,wang@example.com,12345,,,\n"  # row 4: bad phone
        ",nobody@example.com,,,,\n"  # row 5: no name
        "张伟 (again),ZHANG.WEI@example.com,,,,\n"  # row 6: same email as row 2
        "Old Customer,old@example.com,,,,\n"  # row 7: an existing customer
        "星辰科技,,,,2019/7/8,公司\n"  # row 8: a company
        "\n"  # padding, not a row
        "Liu Yang,liu@example.com,,,next tuesday,\n"  # row 10: bad time
        "Zhao Min,,13900139000,,2999-01-01,\n"  # row 11: registered in the future
    )

    report = await imported(api, csv_text.encode())

    assert report["rows"] == 9
    assert report["created"] == 2
    errors = {(e["row"], e["field"]) for e in report["errors"]}
    assert errors == {
        (3, "email"), (4, "phone"), (5, "name"), (10, "registered_at"), (11, "registered_at")
    }
    assert all(e["reason"] for e in report["errors"])
    [zhang] = await api.search(q="zhang wei")
    duplicates = {d["row"]: d for d in report["duplicates"]}
    assert duplicates.keys() == {6, 7}
    assert duplicates[6]["existing_id"] == zhang["id"]
    assert duplicates[6]["duplicate_of_row"] == 2
    assert duplicates[6]["field"] == "email"
    assert duplicates[7]["existing_id"] == existing
    # The migration keeps when the customer really joined (a time without zone: UTC).
    assert zhang["registered_at"] == "2015-03-01T09:30:00+00:00"
    assert zhang["tags"] == ["vip", "北京"]
    assert zhang["phone"] == "+8613800138000"
    [company] = await api.search(kind="company")
    assert company["name"] == "星辰科技"
    assert company["registered_at"] == "2019-07-08T00:00:00+00:00"


async def test_a_rerun_of_the_same_file_creates_nothing_twice(api: Api) -> None:
    csv_text = HEADER + "".join(f"客户{i},c{i}@example.com,,,,\n" for i in range(30))
    csv_text += "无联系方式,,,,,\n"  # no email or phone: found again by its content

    first = await imported(api, csv_text.encode())
    events_after_first = await count_events(api)
    # A new key asks for a second run of the same file, not the first job's answer.
    second = await imported(api, csv_text.encode(), headers={"Idempotency-Key": "second run"})

    assert first["created"] == 31
    assert second["import_id"] != first["import_id"]
    assert second["created"] == 0
    assert len(second["duplicates"]) == 31
    assert {d["reason"] for d in second["duplicates"]} == {"already imported"}
    assert await count_events(api) == events_after_first
    assert len(await api.search(limit=100)) == 31


async def test_utf8_with_bom_and_gbk_files_read_the_same(api: Api) -> None:
    text = "姓名,邮箱\n张伟,zw@example.com\n曾小贤,zxx@example.com\n"
    mapping = {"name": "姓名", "email": "邮箱"}

    with_bom = await imported(
        api, "\ufeff".encode() + text.encode(), mapping=mapping, tenant="t1"
    )
    gbk = await imported(api, text.encode("gbk"), mapping=mapping, tenant="t2")
    plain = await upload(api, text.encode(), mapping=None, tenant="t3")

    assert with_bom["created"] == 2
    assert gbk["created"] == 2
    assert plain.status_code == 422  # no column is called "name" and there is no mapping
    for tenant in ("t1", "t2"):
        assert [c["name"] for c in await api.search(tenant=tenant, q="zeng xiao xian")] == [
            "曾小贤"
        ]
        assert [c["name"] for c in await api.search(tenant=tenant, q="zw")] == ["张伟"]


async def test_columns_named_like_fields_need_no_mapping_and_attributes_map_too(
    api: Api,
) -> None:
    await api.client.put(
        "/api/v1/custom-fields/seats", json={"type": "number"}, headers=api.auth()
    )
    text = "name,email,席位,owner_id\nACME,acme@example.com,12,sales-1\nBeta,b@example.com,many,\n"

    report = await imported(
        api, text.encode(), mapping={"attributes.seats": "席位"}, kind="company"
    )

    assert report["created"] == 1
    assert report["errors"] == [
        {"row": 3, "field": "attributes.seats", "reason": "must be a number"}
    ]
    [acme] = await api.search(q="acme")
    assert acme["kind"] == "company"
    assert acme["attributes"] == {"seats": 12}
    assert acme["owner_id"] == "sales-1"


async def test_a_bad_mapping_or_file_is_a_422_naming_it(api: Api) -> None:
    text = HEADER.encode() + b"A,a@example.com,,,,\n"
    cases: list[tuple[dict[str, Any], str]] = [
        ({"mapping": {"name": "No Such Column"}}, "mapping.name"),
        ({"mapping": {"salary": "客户名称"}}, "mapping.salary"),
        ({"mapping": None, "timezone": "Mars/Olympus"}, "timezone"),
        # Too long to look up as a file: an OSError, a 500 until it was a 422.
        ({"mapping": None, "timezone": "Asia/" + "x" * 300}, "timezone"),
    ]
    for form, field in cases:
        response = await upload(api, text, **form)

        assert response.status_code == 422, response.text
        assert response.json()["errors"][0]["field"] == field

    not_json = await api.client.post(
        IMPORT, files={"file": ("c.csv", text, "text/csv")}, data={"mapping": "{"},
        headers=api.auth(),
    )
    empty = await upload(api, b"")
    binary = await upload(api, b"\xff\xfe\x00\xd8\x00")
    no_file = await api.client.post(IMPORT, data={"mapping": "{}"}, headers=api.auth())
    assert not_json.json()["errors"][0]["field"] == "mapping"
    assert empty.status_code == 422
    assert binary.status_code == 422
    assert no_file.status_code == 422
    sales = await upload(api, text, roles=("sales",))
    assert sales.status_code == 403


async def test_rows_with_nul_characters_are_refused_not_fatal(api: Api) -> None:
    text = "name,email\nA\x00B,a@example.com\nGood,g@example.com\n"

    report = await imported(api, text.encode(), mapping=None)

    assert report["created"] == 1
    assert report["errors"] == [
        {"row": 2, "field": "name", "reason": "contains a NUL character"}
    ]


async def test_an_import_in_a_timezone_keeps_local_times(api: Api) -> None:
    text = "name,registered_at\n张三,2018-06-01 08:00\n"

    await imported(api, text.encode(), mapping=None, timezone="Asia/Shanghai")

    [customer] = await api.search(q="zhang san")
    assert customer["registered_at"] == "2018-06-01T00:00:00+00:00"


async def test_thousands_of_rows_import_in_bulk_batches(api: Api) -> None:
    # Speed is measured by `make bench` (100,000 rows); this checks the bulk path is right.
    lines = ["name,email,phone,tags,registered_at"]
    for i in range(3_000):
        lines.append(
            f"客户{i},customer{i}@example.com,+86138{i:08d},vip;batch,2020-01-01T00:00:00+08:00"
        )
    lines.append("bad,not-an-email,,,")
    content = ("\n".join(lines) + "\n").encode()

    report = await imported(api, content, mapping=None)

    assert report["created"] == 3_000
    assert [e["row"] for e in report["errors"]] == [3_002]
    page = await api.search(tag="batch", limit=1)
    assert page[0]["tags"] == ["batch", "vip"]
