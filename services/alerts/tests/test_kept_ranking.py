"""The churn ranking is kept, not computed per request (decision 0093): the projector
keeps each customer's assessment as events arrive, the sweep assesses again only the
customers due for it, and a page is read by keyset."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from services.alerts.handlers import sweep
from services.alerts.read_model import churn_facts
from services.alerts.tests.conftest import Api, days_before
from services.alerts.tests.test_api import (
    complaints_and_a_key_contact_change,
    metric,
    order,
    registered,
)
from testing.consumers import Clock


async def assessed_at(api: Api, customer_id: str) -> object:
    async with api.app.state.alerts.engine.connect() as conn:
        return (
            await conn.execute(
                select(churn_facts.customers.c.assessed_at).where(
                    churn_facts.customers.c.customer_id == customer_id
                )
            )
        ).scalar_one()


async def test_each_risk_is_kept_with_its_reasons_and_when_it_was_assessed(
    api: Api, clock: Clock
) -> None:
    ids = await complaints_and_a_key_contact_change(api, "c-1")

    (kept,) = (await api.risks())["items"]

    assert kept["level"] == "high" and kept["assessed_at"] == clock.now.isoformat()
    reasons = {r["signal"]: r["event_ids"] for r in kept["reasons"]}
    assert reasons == {
        "key_contact_changed": [ids["change"]],
        "complaints_increase": [ids["second"], ids["first"]],
    }


async def test_the_page_is_read_until_the_sweep_assesses_again(api: Api, clock: Clock) -> None:
    await api.publish("contacts", "c-1", registered("c-1"))
    await api.publish("pipeline", "c-1", *[order("c-1", f"o{n}", n) for n in (90, 60, 30, 5)])
    await api.caught_up()
    assert [i["level"] for i in (await api.risks())["items"]] == ["none"]

    clock.advance(days=120)  # overdue now, with no event
    kept = (await api.risks())["items"]
    appended = await sweep(api.app.state.alerts)
    swept = (await api.risks())["items"]

    assert [i["level"] for i in kept] == ["none"]  # read as kept, not scored per request
    assert appended > 0
    assert [i["level"] for i in swept] == ["high"]
    assert swept[0]["assessed_at"] == clock.now.isoformat()


async def test_the_sweep_reads_only_the_customers_due(api: Api, clock: Clock) -> None:
    for n in (1, 2):
        await api.publish("contacts", f"c-{n}", registered(f"c-{n}"))
    await api.caught_up()
    first = await assessed_at(api, "c-1")

    swept = await metric(api, "crm_churn_sweep_assessed_total")
    clock.advance(hours=12)  # nobody due: assessed half a day ago
    await sweep(api.app.state.alerts)
    not_due = await assessed_at(api, "c-1")
    swept_none = await metric(api, "crm_churn_sweep_assessed_total")
    clock.advance(hours=13)
    await sweep(api.app.state.alerts)

    assert not_due == first and swept_none == swept
    assert await metric(api, "crm_churn_sweep_assessed_total") == swept + 2
    assert await assessed_at(api, "c-1") == clock.now
    assert await assessed_at(api, "c-2") == clock.now


async def test_new_rules_rank_everyone_again_at_the_next_sweep(api: Api) -> None:
    await complaints_and_a_key_contact_change(api, "c-1")
    rules = (await api.client.get("/api/v1/churn/rules", headers=api.auth())).json()
    rules["signals"]["key_contact_changed"]["enabled"] = False
    saved = await api.client.put("/api/v1/churn/rules", json=rules, headers=api.auth())
    assert saved.status_code == 200, saved.text

    await sweep(api.app.state.alerts)

    (kept,) = (await api.risks())["items"]
    assert [r["signal"] for r in kept["reasons"]] == ["complaints_increase"]


async def test_pages_by_keyset_cover_every_customer_once_in_rank_order(api: Api) -> None:
    # Ties at one score are ranked by the lapse index (the longest without an order
    # first), then by id, descending like every key of the page's index.
    await complaints_and_a_key_contact_change(api, "c-0")
    for n in range(1, 8):
        await api.publish("contacts", f"c-{n}", registered(f"c-{n}"))
    for n in (3, 5):
        await api.publish("pipeline", f"c-{n}", order(f"c-{n}", f"o{n}", days=n))
    await api.caught_up()

    seen: list[str] = []
    page = await api.risks(limit=3)
    while True:
        seen += [i["customer_id"] for i in page["items"]]
        if page["next_cursor"] is None:
            break
        page = await api.risks(cursor=page["next_cursor"], limit=3)

    assert seen[0] == "c-0"
    assert seen[1:3] == ["c-5", "c-3"]  # bought, the longest ago first
    assert seen[3:] == ["c-7", "c-6", "c-4", "c-2", "c-1"]  # never bought: last, by id


async def test_a_past_ranking_is_still_scored_as_of_then(api: Api) -> None:
    await complaints_and_a_key_contact_change(api, "c-1")
    then = (days_before(0) - timedelta(days=40)).date().isoformat()

    before = await api.risks(as_of=then)

    (item,) = before["items"]
    assert item["level"] == "none" and item["assessed_at"] == before["as_of"]
