"""CSAT and NPS surveys answered through a one-time link: issue, then answer once.

A survey is a stream of its own: ``SurveySent`` then, at most once, the answer. The
link's token is never an event (only its hash is kept, in ``handlers/surveys.py``); whoever
holds it may answer, once, before it expires.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from libs.events.catalog import DomainEvent
from libs.events.catalog.tickets import CsatAnswered, NpsAnswered, SurveyKind, SurveySent
from libs.platform.errors import Conflict, DomainError, Unprocessable

NpsGroup = Literal["promoter", "passive", "detractor"]

# Long enough for a customer to get round to it, short enough that a forwarded old link dies.
LINK_LIFETIME = timedelta(days=7)
SATISFIED_FROM = 4  # CSAT 4 and 5 count as satisfied


class SurveyAnswered(Conflict):
    def __init__(self) -> None:
        super().__init__("this survey has been answered already; thank you")


class SurveyExpired(DomainError):
    status_code = 410

    def __init__(self, expired_at: datetime) -> None:
        super().__init__("this survey link has expired", expired_at=expired_at.isoformat())


@dataclass(frozen=True, slots=True)
class Survey:
    id: str
    kind: SurveyKind
    customer_id: str
    ticket_id: str | None
    expires_at: datetime
    answered: bool = False
    version: int = 0


def fold_survey(events: Iterable[DomainEvent]) -> Survey | None:
    survey: Survey | None = None
    for event in events:
        if isinstance(event, SurveySent):
            survey = Survey(
                event.survey_id,
                event.kind,
                event.customer_id,
                event.ticket_id,
                event.expires_at,
                version=1,
            )
        elif survey is not None:
            answered = survey.answered or isinstance(event, CsatAnswered | NpsAnswered)
            survey = Survey(
                survey.id,
                survey.kind,
                survey.customer_id,
                survey.ticket_id,
                survey.expires_at,
                answered,
                survey.version + 1,
            )
    return survey


def send_survey(
    survey_id: str, kind: SurveyKind, customer_id: str, ticket_id: str | None, now: datetime
) -> SurveySent:
    return SurveySent(
        survey_id=survey_id,
        customer_id=customer_id,
        kind=kind,
        ticket_id=ticket_id,
        expires_at=now + LINK_LIFETIME,
    )


def answer(survey: Survey, score: int, comment: str, now: datetime) -> DomainEvent:
    if survey.answered:
        raise SurveyAnswered()
    if now >= survey.expires_at:
        raise SurveyExpired(survey.expires_at)
    if survey.kind == "csat":
        if not 1 <= score <= 5:
            raise Unprocessable("score", "a CSAT score is 1 to 5")
        assert survey.ticket_id is not None
        return CsatAnswered(
            survey_id=survey.id,
            customer_id=survey.customer_id,
            ticket_id=survey.ticket_id,
            score=score,
            satisfied=score >= SATISFIED_FROM,
            comment=comment,
        )
    if not 0 <= score <= 10:
        raise Unprocessable("score", "an NPS score is 0 to 10")
    group: NpsGroup = "promoter" if score >= 9 else "passive" if score >= 7 else "detractor"
    return NpsAnswered(
        survey_id=survey.id,
        customer_id=survey.customer_id,
        score=score,
        group=group,
        comment=comment,
    )
