"""CSAT and NPS through one-time links: answered once, without logging in, before expiry."""

from __future__ import annotations

from datetime import timedelta

import pytest

from libs.events.kafka import KafkaSettings
from services.tickets.domain.survey import (
    SurveyAnswered,
    SurveyExpired,
    answer,
    fold_survey,
    send_survey,
)
from services.tickets.tests.conftest import MONDAY_10, Api, MovableClock
from services.tickets.tests.test_events import read_topic


def test_an_nps_answer_says_which_group_the_customer_is_in() -> None:
    survey = fold_survey([send_survey("s1", "nps", "c1", None, MONDAY_10)])
    assert survey is not None

    groups = [answer(survey, score, "", MONDAY_10).group for score in (10, 9, 8, 7, 6, 0)]  # type: ignore[attr-defined]

    assert groups == ["promoter", "promoter", "passive", "passive", "detractor", "detractor"]


def test_a_survey_is_answered_once_and_not_after_it_expired() -> None:
    sent = send_survey("s1", "csat", "c1", "t1", MONDAY_10)
    survey = fold_survey([sent])
    assert survey is not None
    answered = answer(survey, 5, "", MONDAY_10)

    with pytest.raises(SurveyAnswered):
        answer(fold_survey([sent, answered]), 4, "", MONDAY_10)  # type: ignore[arg-type]
    with pytest.raises(SurveyExpired):
        answer(survey, 5, "", MONDAY_10 + timedelta(days=7))


async def solved_ticket(api: Api) -> str:
    customer = await api.register()
    ticket = str((await api.open(customer))["id"])
    await api.post(f"/api/v1/tickets/{ticket}/status", {"status": "solved"})
    return ticket


async def test_a_csat_link_is_answered_once_without_logging_in(
    api: Api, kafka: KafkaSettings
) -> None:
    ticket = await solved_ticket(api)
    sent = await api.post(f"/api/v1/tickets/{ticket}/csat-survey", {})
    assert sent.status_code == 201, sent.text
    link = sent.json()["link"]

    shown = await api.client.get(link)  # no Authorization header
    assert (shown.status_code, shown.json()["kind"]) == (200, "csat")
    first = await api.client.post(f"{link}/answer", json={"score": 2, "comment": "太慢了"})
    second = await api.client.post(f"{link}/answer", json={"score": 5})

    assert (first.status_code, first.json()["satisfied"]) == (201, False)
    assert second.status_code == 409
    published = await read_topic(
        kafka, lambda seen: any(p.type.endswith("csat_answered.v1") for p in seen)
    )
    [csat] = [p for p in published if p.type.endswith("csat_answered.v1")]
    assert (csat.data["ticket_id"], csat.data["score"], csat.data["satisfied"]) == (
        ticket,
        2,
        False,
    )


async def test_a_csat_survey_follows_a_solved_ticket_only(api: Api) -> None:
    customer = await api.register()
    ticket = (await api.open(customer))["id"]

    assert (await api.post(f"/api/v1/tickets/{ticket}/csat-survey", {})).status_code == 409


async def test_an_expired_or_unknown_link_answers_nothing(api: Api, clock: MovableClock) -> None:
    customer = await api.register()
    sent = await api.post(f"/api/v1/customers/{customer}/nps-survey", {})
    assert sent.status_code == 201, sent.text
    clock.advance(timedelta(days=8))

    expired = await api.client.post(f"{sent.json()['link']}/answer", json={"score": 9})
    unknown = await api.client.post("/api/v1/surveys/" + "x" * 43 + "/answer", json={"score": 9})

    assert expired.status_code == 410
    assert unknown.status_code == 404
    assert (await api.post("/api/v1/customers/nobody/nps-survey", {})).status_code == 404


async def test_a_csat_score_outside_1_to_5_is_a_422(api: Api) -> None:
    ticket = await solved_ticket(api)
    link = (await api.post(f"/api/v1/tickets/{ticket}/csat-survey", {})).json()["link"]

    response = await api.client.post(f"{link}/answer", json={"score": 9})

    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "score"
