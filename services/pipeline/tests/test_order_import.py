"""CSV import of historic orders over HTTP, on real PostgreSQL and the real broker."""

from __future__ import annotations

import codecs
from typing import Any

import pytest

from services.pipeline.tests.conftest import Api


async def upload(api: Api, content: bytes, **form: str) -> dict[str, Any]:
    response = await api.client.post(
        "/api/v1/orders/import",
        files={"file": ("orders.csv", content, "text/csv")},
        data=form,
        headers=api.auth(roles=["integration"]),
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def csv_text(customer: str) -> str:
    return "\n".join(
        [
            "external_id,customer_id,currency,placed_at,total,sku,name,quantity,unit_price",
            f"ERP-1,{customer},CNY,2024-01-02 10:00:00,,TEA,龙井,2,88.00",
            f"ERP-1,{customer},CNY,2024-01-02 10:00:00,,CUP,杯子,1,15.50",
            f",{customer},CNY,2024-02-01T08:00:00+00:00,99.90,,,,",
            "ERP-3,nobody,CNY,2024-03-01T08:00:00+00:00,10,,,,",
            f"ERP-4,{customer},XYZ,2024-03-01T08:00:00+00:00,10,,,,",
            f"ERP-5,{customer},CNY,2024-03-01T08:00:00+00:00,10.001,,,,",
            f"ERP-6,{customer},CNY,2999-03-01T08:00:00+00:00,10,,,,",
        ]
    )


async def test_good_rows_go_in_bad_rows_are_reported_and_a_rerun_adds_nothing(api: Api) -> None:
    customer = await api.register()
    content = codecs.BOM_UTF8 + csv_text(customer).encode()
    report = await upload(api, content, amounts="decimal", timezone="Asia/Shanghai")
    assert (report["rows"], report["orders"], report["created"]) == (7, 6, 2)
    assert [(e["row"], e["field"]) for e in report["errors"]] == [
        (5, "customer_id"),
        (6, "currency"),
        (7, "total"),
        (8, "placed_at"),
    ]
    listed = await api.client.get(f"/api/v1/customers/{customer}/orders", headers=api.auth())
    items = listed.json()["items"]
    assert [(o["total"], o["placed_at"]) for o in items] == [
        (9990, "2024-02-01T08:00:00+00:00"),
        (2 * 8800 + 1550, "2024-01-02T02:00:00+00:00"),  # 10:00 in Shanghai
    ]

    again = await upload(api, content, amounts="decimal", timezone="Asia/Shanghai")
    assert (again["created"], again["already_imported"]) == (0, 2)
    assert len(again["errors"]) == 4
    figures = await api.client.get(
        f"/api/v1/customers/{customer}/purchase-figures", headers=api.auth()
    )
    assert figures.json()["order_count"] == 2


async def test_a_changed_order_under_an_imported_external_id_is_reported(api: Api) -> None:
    customer = await api.register()
    header = "external_id,customer_id,currency,total\n"
    await upload(api, f"{header}ERP-9,{customer},CNY,1000\n".encode())
    report = await upload(
        api, f"{header}ERP-9,{customer},CNY,2000\nERP-10,{customer},CNY,5\n".encode()
    )
    assert report["created"] == 1
    assert [(e["row"], e["field"]) for e in report["errors"]] == [(2, "total")]


async def test_a_gbk_file_from_excel_is_read(api: Api) -> None:
    customer = await api.register()
    text = (
        "customer_id,currency,total,sku,name,quantity,unit_price\n"
        f"{customer},CNY,,T1,铁观音,1,500\n"
    )
    report = await upload(api, text.encode("gbk"))
    assert report["created"] == 1, report
    listed = await api.client.get(f"/api/v1/customers/{customer}/orders", headers=api.auth())
    order = listed.json()["items"][0]["id"]
    detail = await api.client.get(f"/api/v1/orders/{order}", headers=api.auth())
    assert detail.json()["lines"][0]["name"] == "铁观音"


async def test_a_file_without_the_customer_column_is_refused(api: Api) -> None:
    response = await api.client.post(
        "/api/v1/orders/import",
        files={"file": ("orders.csv", b"currency,total\nCNY,1\n", "text/csv")},
        headers=api.auth(),
    )
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == "file"
    sales = await api.client.post(
        "/api/v1/orders/import",
        files={"file": ("orders.csv", b"customer_id,currency\n", "text/csv")},
        headers=api.auth(roles=["sales"]),
    )
    assert sales.status_code == 403


async def test_a_file_no_csv_reader_can_parse_is_answered_row_by_row(api: Api) -> None:
    customer = await api.register()
    header = b"external_id,customer_id,currency,total\n"
    # A lone carriage return ends a record (old Mac files), a NUL in a value, a good row.
    content = (
        header
        + b"ERP-20,bad\rvalue,CNY,5\n"
        + f"ERP-21\x00,{customer},CNY,5\n".encode()
        + f"ERP-22,{customer},CNY,7\n".encode()
    )
    report = await upload(api, content)
    assert report["created"] == 1, report
    assert {"row": 4, "field": "external_id", "reason": "contains a NUL character"} in report[
        "errors"
    ]
    assert [e["row"] for e in report["errors"]] == [2, 3, 4]
    no_header = await api.client.post(
        "/api/v1/orders/import",
        files={"file": ("orders.csv", "\U00061a0c\r\U0004f678(\\".encode(), "text/csv")},
        headers=api.auth(roles=["integration"]),
    )
    assert no_header.status_code == 422, no_header.text
    assert no_header.json()["errors"][0]["field"] == "file"


@pytest.mark.slow
async def test_a_hundred_thousand_historic_orders_import_and_reimport(api: Api) -> None:
    customers = [await api.register(email=f"buyer{i}@example.com") for i in range(100)]
    lines = ["external_id,customer_id,currency,placed_at,total"]
    lines += [
        f"ERP-{i},{customers[i % 100]},CNY,2024-01-01T00:00:00+00:00,{100 + i}"
        for i in range(100_000)
    ]
    lines.append("ERP-bad,nobody,CNY,2024-01-01T00:00:00+00:00,1")
    content = "\n".join(lines).encode()
    first = await upload(api, content)
    assert (first["created"], len(first["errors"])) == (100_000, 1)
    again = await upload(api, content)
    assert (again["created"], again["already_imported"]) == (0, 100_000)
    figures = await api.client.get(
        f"/api/v1/customers/{customers[0]}/purchase-figures", headers=api.auth()
    )
    assert figures.json()["order_count"] == 1000
