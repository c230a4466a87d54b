"""Survey links: issue a one-time token, answer through it without logging in.

Only the token's SHA-256 is stored (a leaked table answers nothing). Answering
appends the answer to the survey's stream at version 1, so two uses of one link
race on one version and only one can win; the domain refuses a used or expired one.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Column, Index, Integer, MetaData, String, Table, select

from libs.events.catalog import DomainEvent
from libs.events.catalog.tickets import SurveyKind
from libs.events.store import ConcurrencyConflict
from libs.events.write_path import new_events
from libs.platform.db import UtcDateTime
from libs.platform.errors import Conflict, NotFound
from services.tickets.domain.survey import Survey, SurveyAnswered, answer, fold_survey, send_survey
from services.tickets.domain.ticket import existing, fold
from services.tickets.handlers import Tickets, timed

metadata = MetaData()
links = Table(
    "survey_links",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("tenant_id", String(64), nullable=False),
    Column("survey_id", String(64), nullable=False),
)


# One row per answer, for service statistics (the events stay the source of truth).
answers = Table(
    "survey_answers",
    metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("survey_id", String(64), primary_key=True),
    Column("kind", String(8), nullable=False),
    Column("score", Integer, nullable=False),
    Column("answered_at", UtcDateTime, nullable=False),
)
Index("ix_survey_answers_time", answers.c.tenant_id, answers.c.answered_at)


class UnknownSurvey(NotFound):
    def __init__(self) -> None:
        super().__init__("no survey behind this link")


class NotSolved(Conflict):
    def __init__(self, ticket_id: str, status: str) -> None:
        super().__init__(
            f"ticket {ticket_id} is {status}: a CSAT survey follows a solved ticket",
            ticket_id=ticket_id,
            ticket_status=status,
        )


@dataclass(frozen=True)
class IssuedLink:
    survey_id: str
    kind: SurveyKind
    token: str
    expires_at: datetime


def survey_stream(survey_id: str) -> str:
    return f"survey:{survey_id}"


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def send(
    tickets: Tickets, tenant_id: str, kind: SurveyKind, customer_id: str, ticket_id: str | None
) -> IssuedLink:
    survey_id, token, now = str(uuid.uuid4()), secrets.token_urlsafe(32), tickets.clock()
    sent = send_survey(survey_id, kind, customer_id, ticket_id, now)
    async with tickets.engine.begin() as conn:
        await tickets.store.append(
            tenant_id,
            survey_stream(survey_id),
            0,
            new_events([sent], customer_id, now),
            conn=conn,
        )
        await conn.execute(
            links.insert().values(token_hash=_hash(token), tenant_id=tenant_id, survey_id=survey_id)
        )
    tickets.appended(1)
    return IssuedLink(survey_id, kind, token, sent.expires_at)


async def send_csat(tickets: Tickets, tenant_id: str, ticket_id: str) -> IssuedLink:
    ticket = existing(fold(timed(await tickets.store.read_stream(tenant_id, ticket_id))), ticket_id)
    if ticket.status not in ("solved", "closed"):
        raise NotSolved(ticket_id, ticket.status)
    return await send(tickets, tenant_id, "csat", ticket.customer_id, ticket_id)


async def find(tickets: Tickets, token: str) -> tuple[str, Survey]:
    async with tickets.engine.connect() as conn:
        row = (
            await conn.execute(
                select(links.c.tenant_id, links.c.survey_id).where(
                    links.c.token_hash == _hash(token)
                )
            )
        ).first()
    if row is None:
        raise UnknownSurvey()
    recorded = await tickets.store.read_stream(row.tenant_id, survey_stream(row.survey_id))
    survey = fold_survey(e for e, _ in timed(recorded))
    if survey is None:
        raise UnknownSurvey()
    return row.tenant_id, survey


async def answer_with(tickets: Tickets, token: str, score: int, comment: str) -> DomainEvent:
    tenant_id, survey = await find(tickets, token)
    now = tickets.clock()
    answered = answer(survey, score, comment, now)
    try:
        async with tickets.engine.begin() as conn:
            await tickets.store.append(
                tenant_id,
                survey_stream(survey.id),
                survey.version,
                new_events([answered], survey.customer_id, now),
                conn=conn,
            )
            await conn.execute(
                answers.insert().values(
                    tenant_id=tenant_id,
                    survey_id=survey.id,
                    kind=survey.kind,
                    score=score,
                    answered_at=now,
                )
            )
    except ConcurrencyConflict:
        raise SurveyAnswered() from None  # the same link, used twice at once
    tickets.appended(1)
    return answered
