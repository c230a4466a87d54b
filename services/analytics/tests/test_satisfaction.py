"""NPS and CSAT over time and by owner, ticket category and segment; activity per
customer and per owner."""

from __future__ import annotations

from typing import Literal

from libs.events.catalog.contacts import InteractionLogged
from libs.events.catalog.tickets import Category, CsatAnswered, NpsAnswered, TicketOpened
from services.analytics.tests.conftest import Api
from services.analytics.tests.histories import at, registered


def nps(survey: str, customer: str, score: int) -> NpsAnswered:
    group: Literal["promoter", "passive", "detractor"] = (
        "promoter" if score >= 9 else "passive" if score >= 7 else "detractor"
    )
    return NpsAnswered(survey_id=survey, customer_id=customer, score=score, group=group)


def ticket(ticket_id: str, customer: str, category: Category) -> TicketOpened:
    return TicketOpened(
        ticket_id=ticket_id,
        customer_id=customer,
        subject="s",
        channel="email",
        category=category,
        priority="normal",
        opened_by="u-1",
    )


def csat(survey: str, customer: str, ticket_id: str, score: int) -> CsatAnswered:
    return CsatAnswered(
        survey_id=survey,
        customer_id=customer,
        ticket_id=ticket_id,
        score=score,
        satisfied=score >= 4,
    )


def talk(customer: str, n: int, month: int) -> InteractionLogged:
    return InteractionLogged(
        customer_id=customer,
        interaction_id=f"{customer}-{n}",
        channel="phone",
        direction="outbound",
        by="u-1",
        occurred_at=at(month, 1 + n),
    )


async def history(api: Api) -> None:
    await api.publish("contacts", "a", registered("a", at(1, 1), owner_id="u-1"))
    await api.publish("contacts", "b", registered("b", at(1, 1), owner_id="u-2"))
    await api.publish("tickets", "a", nps("n1", "a", 10), at=at(1, 5))
    await api.publish("tickets", "b", nps("n2", "b", 2), at=at(1, 6))
    await api.publish("tickets", "a", nps("n3", "a", 9), at=at(2, 5))
    await api.publish("tickets", "a", ticket("t1", "a", "complaint"), at=at(2, 1))
    await api.publish("tickets", "b", ticket("t2", "b", "question"), at=at(2, 1))
    await api.publish("tickets", "a", csat("c1", "a", "t1", 5), at=at(2, 3))
    await api.publish("tickets", "b", csat("c2", "b", "t2", 1), at=at(2, 3))
    await api.publish("tickets", "b", csat("c3", "b", "t2", 4), at=at(3, 3))
    await api.publish("contacts", "a", *[talk("a", n, 2) for n in range(3)])
    await api.publish("contacts", "b", talk("b", 0, 2))


async def test_nps_over_time_and_by_owner(api: Api) -> None:
    await history(api)
    await api.caught_up()
    window = {"from": "2026-01-01", "to": "2026-03-31"}

    overall = await api.get("nps", **window)
    assert (overall["nps"], overall["responses"]) == (round(100 * (2 - 1) / 3, 2), 3)
    assert [(r["period"], r["nps"]) for r in overall["table"]] == [
        ("2026-01", 0.0),
        ("2026-02", 100.0),
    ]
    owners = await api.get("nps", by="owner", **window)
    assert [(r["owner"], r["nps"]) for r in owners["table"]] == [("u-1", 100.0), ("u-2", -100.0)]
    # As of January's end, February's answer had not been given.
    january = await api.get("nps", as_of="2026-01-31", **{"from": "2026-01-01"})
    assert january["responses"] == 2
    behind = await api.get("nps/customers", **window)
    assert [c["customer_id"] for c in behind["items"]] == ["a", "a", "b"]


async def test_csat_by_ticket_category_and_activity_per_owner(api: Api) -> None:
    await history(api)
    await api.caught_up()
    window = {"from": "2026-02-01", "to": "2026-02-28"}

    by_category = await api.get("csat", by="category", **window)
    assert [(r["category"], r["csat"], r["mean_score"]) for r in by_category["table"]] == [
        ("complaint", 1.0, 5.0),
        ("question", 0.0, 1.0),
    ]
    assert by_category["csat"] == 0.5
    activity = await api.get("activity", **window)
    assert (activity["interactions"], activity["customers"], activity["per_customer"]) == (
        4,
        2,
        2.0,
    )
    assert [(r["owner_id"], r["interactions"]) for r in activity["table"]] == [
        ("u-1", 3),
        ("u-2", 1),
    ]


async def test_nps_of_a_segment(api: Api) -> None:
    await history(api)
    await api.caught_up()
    saved = await api.client.put(
        "/api/v1/analytics/segments/owned-by-u1", json={"owner_ids": ["u-1"]}, headers=api.auth()
    )
    assert saved.status_code == 201, saved.text

    answer = await api.get("nps", segment="owned-by-u1", **{"from": "2026-01-01"})
    assert (answer["nps"], answer["responses"], answer["segment"]) == (100.0, 2, "owned-by-u1")
