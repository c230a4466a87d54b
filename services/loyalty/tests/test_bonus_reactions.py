"""Referral and survey bonuses from other services' events on the real broker: once,
however often and in whatever order the topics deliver them (decision 0040)."""

from __future__ import annotations

from datetime import timedelta

from libs.events.catalog.contacts import CustomerReferred, CustomerRegistered
from libs.events.catalog.pipeline import OrderPlaced
from libs.events.catalog.tickets import CsatAnswered, NpsAnswered
from services.loyalty.tests.conftest import T0, Api, eventually
from services.loyalty.tests.test_earning import _has_line, replay


def placed(order_id: str, customer_id: str, total: int, days: int = 0) -> OrderPlaced:
    return OrderPlaced(
        order_id=order_id,
        customer_id=customer_id,
        currency="CNY",
        total=total,
        placed_at=T0 + timedelta(days=days),
    )


def assert_lines_add_up(lines: list[dict[str, object]]) -> None:
    """Each line's balance is the one before it plus its points, in version order."""
    balance = 0
    versions = [line["version"] for line in lines]
    assert versions == sorted(set(versions))  # type: ignore[type-var]
    for line in lines:
        balance += line["points"]  # type: ignore[operator]
        assert line["balance_after"] == balance, lines


async def set_bonuses(api: Api, tenant: str = "acme") -> None:
    rules = {
        "referral_bonus": 500,
        "survey_bonus": 20,
        "effective_from": (T0 - timedelta(days=365)).isoformat(),
    }
    response = await api.client.put("/api/v1/loyalty/rules", json=rules, headers=api.auth(tenant))
    assert response.status_code == 200, response.text


async def test_a_referred_customers_first_order_earns_the_referrer_once(api: Api) -> None:
    await set_bonuses(api)
    await api.publish(
        "contacts",
        "friend",
        CustomerRegistered(
            customer_id="friend", tenant_id="acme", kind="person", name="x", registered_at=T0
        ),
    )
    # The order arrives before the referral (another topic): it settles it all the same.
    first = await api.publish("pipeline", "newbie", placed("o-1", "newbie", 10_000))
    referral = await api.publish(
        "contacts", "newbie", CustomerReferred(customer_id="newbie", referrer_id="friend")
    )
    second = await api.publish("pipeline", "newbie", placed("o-2", "newbie", 10_000, days=1))
    await eventually(lambda: _has_line(api, "friend", "referral:newbie"))
    await eventually(lambda: _has_line(api, "newbie", second[0].id))

    # Everything redelivered (a relay's crash), then replayed by a new consumer group.
    await api.send("crm.pipeline.events", [*first, *second])
    await api.send("crm.contacts.events", referral)
    marker = await api.publish("pipeline", "friend", placed("o-9", "friend", 100))
    await eventually(lambda: _has_line(api, "friend", marker[0].id))
    lines = await api.ledger("friend")
    assert [(line["detail"]["reason"], line["points"]) for line in lines] == [
        ("referral", 500),
        ("order", 1),
    ]
    assert "o-1" in lines[0]["detail"]["explanation"]
    assert lines[0]["detail"]["referred_customer_id"] == "newbie"
    assert (await api.loyalty("friend"))["balance"] == 501
    assert (await api.loyalty("newbie"))["balance"] == 200
    assert_lines_add_up(lines)
    assert_lines_add_up(await api.ledger("newbie"))
    before = [await api.ledger("friend"), await api.ledger("newbie")]
    await replay(api)
    assert [await api.ledger("friend"), await api.ledger("newbie")] == before


async def test_a_customer_who_ordered_before_the_referral_earns_the_referrer_nothing(
    api: Api,
) -> None:
    await set_bonuses(api)
    early = await api.publish("pipeline", "old", placed("o-1", "old", 10_000, days=-30))
    await eventually(lambda: _has_line(api, "old", early[0].id))
    await api.publish("contacts", "old", CustomerReferred(customer_id="old", referrer_id="pal"))
    later = await api.publish("pipeline", "old", placed("o-2", "old", 10_000, days=1))
    await eventually(lambda: _has_line(api, "old", later[0].id))
    response = await api.client.get("/api/v1/customers/pal/loyalty/ledger", headers=api.auth())
    assert response.status_code == 404  # no line ever made a ledger for the referrer


async def test_every_survey_answer_earns_the_survey_bonus_once(api: Api) -> None:
    await set_bonuses(api)
    csat = await api.publish(
        "tickets",
        "c-s",
        CsatAnswered(
            survey_id="sv-1", customer_id="c-s", ticket_id="t-1", score=2, satisfied=False
        ),
    )
    nps = await api.publish(
        "tickets",
        "c-s",
        NpsAnswered(survey_id="sv-2", customer_id="c-s", score=10, group="promoter"),
    )
    await eventually(lambda: _has_line(api, "c-s", nps[0].id))
    # Redelivered, and the CSAT answer republished under a new event id.
    await api.send("crm.tickets.events", [*csat, *nps])
    again = await api.publish(
        "tickets",
        "c-s",
        CsatAnswered(
            survey_id="sv-1", customer_id="c-s", ticket_id="t-1", score=2, satisfied=False
        ),
    )
    marker = await api.publish("pipeline", "c-s", placed("o-1", "c-s", 100))
    await eventually(lambda: _has_line(api, "c-s", marker[0].id))
    lines = await api.ledger("c-s")
    assert [(line["detail"]["reason"], line["source_event_id"]) for line in lines] == [
        ("survey", csat[0].id),
        ("survey", nps[0].id),
        ("order", marker[0].id),
    ]
    assert again[0].id not in {line["source_event_id"] for line in lines}
    assert (await api.loyalty("c-s"))["balance"] == 20 + 20 + 1
    assert_lines_add_up(lines)
