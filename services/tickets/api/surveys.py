"""Survey links over HTTP (support sends them; customers answer without logging in),
and the service statistics they feed.

``/api/v1/surveys/{token}`` needs no token of ours: the link's one-time token is the
credential, so a customer answers from an SMS or a WeChat message as it is.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import Path, Query, Request, status
from pydantic import BaseModel, ConfigDict, Field

from libs.events.catalog.tickets import CsatAnswered, SurveyKind
from libs.platform.dependencies import bearer_token
from libs.platform.errors import Unprocessable
from libs.platform.routing import ServiceRouter
from libs.platform.types import Instant
from services.tickets.api.tickets import CustomerId, Reader, TicketId, TicketsDep, Worker
from services.tickets.handlers import surveys
from services.tickets.handlers.surveys import IssuedLink
from services.tickets.read_model.service_stats import service_stats

router = ServiceRouter(prefix="/api/v1", tags=["surveys"])
Token = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{20,100}$", description="the link's token")]


class SurveyLink(BaseModel):
    survey_id: str
    kind: SurveyKind
    token: str
    # Where the customer answers (GET to show it, POST .../answer to answer).
    link: str
    expires_at: datetime


class Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    score: int = Field(ge=0, le=10)
    comment: str = Field(default="", max_length=5000, pattern=r"^[^\x00]*$")


def _link(issued: IssuedLink) -> SurveyLink:
    return SurveyLink(
        survey_id=issued.survey_id,
        kind=issued.kind,
        token=issued.token,
        link=f"{router.prefix}/surveys/{issued.token}",
        expires_at=issued.expires_at,
    )


@router.get("/service-stats")
async def get_service_stats(
    principal: Reader,
    tickets: TicketsDep,
    start: Annotated[Instant, Query(alias="from")],
    end: Annotated[Instant, Query(alias="to")],
) -> dict[str, Any]:
    """Tickets opened and solved, median first response and resolution in business
    hours, SLA compliance per priority, CSAT (% satisfied), NPS, complaints still open."""
    if end <= start:
        raise Unprocessable("to", "must be after from")
    return await service_stats(tickets.engine, principal.tenant_id, start, end)


@router.post("/tickets/{ticket_id}/csat-survey", status_code=status.HTTP_201_CREATED)
async def send_csat_survey(
    ticket_id: TicketId, principal: Worker, tickets: TicketsDep
) -> SurveyLink:
    """A one-time CSAT link (1-5) for a solved ticket, to send to the customer."""
    return _link(await surveys.send_csat(tickets, principal.tenant_id, ticket_id))


@router.post("/customers/{customer_id}/nps-survey", status_code=status.HTTP_201_CREATED)
async def send_nps_survey(
    customer_id: CustomerId, request: Request, principal: Worker, tickets: TicketsDep
) -> SurveyLink:
    """A one-time NPS link (0-10) for a customer of the tenant."""
    customer = await tickets.directory.find(principal.tenant_id, customer_id, bearer_token(request))
    return _link(await surveys.send(tickets, principal.tenant_id, "nps", customer.id, None))


@router.get("/surveys/{token}")
async def show_survey(token: Token, tickets: TicketsDep) -> dict[str, Any]:
    """What the link asks (no login): its kind, until when, whether it was answered."""
    _, survey = await surveys.find(tickets, token)
    return {
        "kind": survey.kind,
        "question": "How satisfied are you with how we handled your request? (1-5)"
        if survey.kind == "csat"
        else "How likely are you to recommend us to a friend or colleague? (0-10)",
        "expires_at": survey.expires_at,
        "answered": survey.answered,
    }


@router.post("/surveys/{token}/answer", status_code=status.HTTP_201_CREATED)
async def answer_survey(token: Token, body: Answer, tickets: TicketsDep) -> dict[str, Any]:
    """Answer once (no login): 409 when already answered, 410 when the link expired."""
    answered = await surveys.answer_with(tickets, token, body.score, body.comment.strip())
    result: dict[str, Any] = {"score": body.score}
    if isinstance(answered, CsatAnswered):
        result["satisfied"] = answered.satisfied
    return result
