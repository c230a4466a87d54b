"""Retention, repurchase, frequency, AOV and historic CLV on a generated history whose
figures are known in closed form (histories.py), as of now and as of past dates, on
PostgreSQL and on SQLite, through the real broker."""

from __future__ import annotations

import csv
import io
from typing import Any

from services.analytics.tests.conftest import Api
from services.analytics.tests.histories import FEBRUARY, JANUARY, publish_history

JUNE_END = "2026-06-30"


async def test_a_cohort_that_buys_every_month_keeps_it_all_and_one_that_stops_drops_to_zero(
    api: Api,
) -> None:
    await publish_history(api)
    await api.caught_up()

    answer = await api.get("retention", as_of=JUNE_END)

    rows = {r["cohort"]: r for r in answer["table"]}
    assert rows["2026-01"]["customers"] == 4
    assert rows["2026-01"]["buyers"] == [4, 4, 4, 4, 4, 4]
    assert rows["2026-01"]["retention"] == [1.0] * 6
    assert rows["2026-02"]["buyers"] == [2, 2, 0, 0, 0]
    assert rows["2026-02"]["retention"] == [1.0, 1.0, 0.0, 0.0, 0.0]
    # The refunded order still counts as buying; the cancelled one never happened.
    assert rows["2026-03"]["buyers"] == [1, 0, 0, 0]
    assert "2026-04" not in rows
    assert "first order" in answer["method"]


async def test_as_of_answers_what_was_known_then(api: Api) -> None:
    await publish_history(api)
    await api.caught_up()

    march = await api.get("retention", as_of="2026-03-31")
    assert [r["buyers"] for r in march["table"]] == [[4, 4, 4], [2, 2], [1]]
    # Before the refund (March 20th) the order was worth 500; after, nothing.
    before = await api.get("clv", **{"as_of": "2026-03-15", "from": "2026-03-01"})
    after = await api.get("clv", **{"as_of": "2026-03-31", "from": "2026-03-01"})
    lifetime = {
        c["customer_id"]: c["lifetime_net_revenue"]
        for c in (await api.get("clv/customers", as_of="2026-03-15"))["items"]
    }
    assert lifetime["refunded"] == 500
    assert before["net_revenue"] == 4 * 3 * 1000 + 2 * 2 * 1000 + 500
    assert after["net_revenue"] == 4 * 3 * 1000 + 2 * 2 * 1000
    # The cancelled order counted while it stood (April 2nd), not after.
    assert (
        await api.get("order-frequency", as_of="2026-04-02T18:00:00Z", **{"from": "2026-04-01"})
    )["orders"] == 1
    assert (
        await api.get("order-frequency", as_of="2026-04-03T18:00:00Z", **{"from": "2026-04-01"})
    )["orders"] == 0


async def test_repurchase_frequency_order_value_and_clv_net_of_refunds(api: Api) -> None:
    await publish_history(api)
    await api.caught_up()
    window = {"from": "2026-01-01", "to": JUNE_END, "as_of": JUNE_END}

    repurchase = await api.get("repurchase-rate", **window)
    frequency = await api.get("order-frequency", **window)
    value = await api.get("average-order-value", **window)
    clv = await api.get("clv", **window)

    orders = 4 * 6 + 2 * 2 + 1
    net = 4 * 6 * 1000 + 2 * 2 * 1000  # the refunded order is worth nothing
    assert (repurchase["repeat_customers"], repurchase["customers"]) == (6, 7)
    assert repurchase["value"] == round(6 / 7, 6)
    assert frequency["value"] == round(orders / 7, 6)
    assert value["value"] == round(net / orders, 6)
    assert clv["value"] == round(net / 7, 6)
    assert clv["distribution"]["min"] == 0 and clv["distribution"]["max"] == 6000
    for answer in (repurchase, frequency, value, clv):
        assert answer["method"] and answer["as_of"].startswith(JUNE_END)
        assert answer["drill_down"].startswith(f"/api/v1/analytics/{answer['figure']}/customers")

    drill = await api.get("repurchase-rate/customers", **window)
    assert [c["customer_id"] for c in drill["items"]] == sorted([*JANUARY, *FEBRUARY, "refunded"])
    assert {c["customer_id"] for c in drill["items"] if not c["repeat"]} == {"refunded"}


async def test_the_customers_behind_a_cohort_cell_page_by_page(api: Api) -> None:
    await publish_history(api)
    await api.caught_up()

    params: dict[str, Any] = {"as_of": JUNE_END, "cohort": "2026-02-01", "period": 1, "limit": 1}
    first = await api.get("retention/customers", **params)
    second = await api.get(
        "retention/customers", cursor=first["next_cursor"], limit=1, cohort="2026-02-01", period=1
    )
    assert [c["customer_id"] for c in first["items"] + second["items"]] == FEBRUARY
    assert second["next_cursor"] is None
    gone = await api.get("retention/customers", as_of=JUNE_END, cohort="2026-02-01", period=2)
    assert gone["items"] == []


async def test_exports_are_for_managers_and_admins(api: Api) -> None:
    await publish_history(api)
    await api.caught_up()

    for role, status in (("viewer", 403), ("sales", 403), ("manager", 200), ("admin", 200)):
        response = await api.client.get(
            "/api/v1/analytics/retention/export",
            params={"as_of": JUNE_END},
            headers=api.auth(roles=[role]),
        )
        assert response.status_code == status, (role, response.text)
    response = await api.client.get(
        "/api/v1/analytics/clv/export",
        params={"as_of": JUNE_END, "part": "customers"},
        headers=api.auth(roles=["manager"]),
    )
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert {r["customer_id"]: int(r["lifetime_net_revenue"]) for r in rows}["jan-0"] == 6000
    # Reading figures is everyone's.
    viewer = await api.client.get("/api/v1/analytics/clv", headers=api.auth(roles=["viewer"]))
    assert viewer.status_code == 200


async def test_another_tenant_sees_none_of_it(api: Api) -> None:
    await publish_history(api)
    await api.caught_up()

    other = await api.get("retention", tenant="globex", as_of=JUNE_END)
    assert other["table"] == []
    assert (await api.get("clv", tenant="globex"))["customers"] == 0


async def test_bad_input_names_the_field(api: Api) -> None:
    for params, field in (
        ({"as_of": "yesterday"}, "as_of"),
        ({"from": "2026-05-01", "to": "2026-04-01"}, "from"),
        ({"as_of": "2026-05-01T10:00:00"}, "as_of"),
        ({"segment": "Not A Name"}, "segment"),
    ):
        response = await api.client.get("/api/v1/analytics/clv", params=params, headers=api.auth())
        assert response.status_code == 422, params
        assert response.json()["errors"][0]["field"] == field
    unknown = await api.client.get("/api/v1/analytics/nonsense", headers=api.auth())
    assert unknown.status_code in (404, 422)
    missing = await api.client.get(
        "/api/v1/analytics/clv", params={"segment": "nobody-defined-it"}, headers=api.auth()
    )
    assert missing.status_code == 404
