"""Escalation rules: pure (given a ticket, when the time comes, then these events), and
run by the scheduler with a movable clock against the real database."""

from __future__ import annotations

from datetime import timedelta

from fastapi import FastAPI
from sqlalchemy import func, select

from libs.events.catalog.tickets import (
    EscalationRule,
    SlaPolicyApplied,
    TicketAssigned,
    TicketEscalated,
    TicketPriorityChanged,
)
from libs.events.store import events
from services.tickets.commands import ReplyToTicket
from services.tickets.domain.calendar import STANDARD
from services.tickets.domain.escalation import escalate, next_look
from services.tickets.domain.ticket import AppliedSla, decide
from services.tickets.tests.conftest import Api, MovableClock
from services.tickets.tests.test_api import STANDARD_POLICY
from services.tickets.tests.test_ticket import T0, given, opened

BEFORE = EscalationRule(
    name="warn-lead", target="resolution", minutes_before=30, group="leads", assign_to="lead-1"
)
ON_BREACH = EscalationRule(name="raise", target="first_response", raise_priority=True)


def test_a_rule_fires_its_minutes_before_the_due_time_and_not_earlier() -> None:
    ticket = given(*opened())
    due = T0 + timedelta(hours=8)  # resolution, Friday 18:00

    assert next_look(ticket, STANDARD, T0, [BEFORE]) == T0 + timedelta(hours=1)  # first response
    assert next_look(ticket, STANDARD, T0, [BEFORE, ON_BREACH]) == T0 + timedelta(hours=1)
    assert escalate(BEFORE, ticket, STANDARD, due - timedelta(minutes=31)) == []

    events = escalate(BEFORE, ticket, STANDARD, due - timedelta(minutes=30))
    assert [type(e) for e in events] == [TicketEscalated, TicketAssigned]
    assert events[1].assignee_id == "lead-1"  # type: ignore[attr-defined]


def test_a_rule_fires_once() -> None:
    late = T0 + timedelta(hours=2)
    events = escalate(ON_BREACH, given(*opened()), STANDARD, late)

    assert escalate(ON_BREACH, given(*opened(), *events), STANDARD, late) == []


def test_raising_the_priority_reapplies_the_policy_for_the_new_priority() -> None:
    high = AppliedSla("default", 1, "standard", 0, {"first_response": 30})
    events = escalate(ON_BREACH, given(*opened()), STANDARD, T0 + timedelta(hours=2), high)

    assert [type(e) for e in events] == [TicketEscalated, TicketPriorityChanged, SlaPolicyApplied]
    assert events[1].to_priority == "high"  # type: ignore[attr-defined]
    assert events[0].actions == ["TicketPriorityChanged"]  # type: ignore[attr-defined]


def test_a_paused_or_answered_target_does_not_escalate() -> None:
    reply = decide(ReplyToTicket(ticket_id="t1", by="a", body="hi"), given(*opened()), T0)
    answered = given(*opened(), *reply)

    assert escalate(ON_BREACH, answered, STANDARD, T0 + timedelta(days=3)) == []


async def test_the_scheduler_escalates_before_the_breach_and_once(
    api: Api, app: FastAPI, clock: MovableClock
) -> None:
    assert (await api.put("/api/v1/sla-policies/default", STANDARD_POLICY)).status_code == 200
    rules = {"rules": [BEFORE.model_dump()]}
    assert (await api.put("/api/v1/escalation-rules", rules)).status_code == 200
    ticket = (await api.open(await api.register()))["id"]
    await api.post(f"/api/v1/tickets/{ticket}/replies", {"body": "在查"})

    clock.advance(timedelta(hours=7, minutes=29))  # resolution due at 18:00
    await app.state.scheduler.tick()
    assert (await api.get(f"/api/v1/tickets/{ticket}")).json()["assignee_id"] is None

    clock.advance(timedelta(minutes=1))
    await app.state.scheduler.tick()
    await app.state.scheduler.tick()

    view = (await api.get(f"/api/v1/tickets/{ticket}")).json()
    assert (view["assignee_id"], view["group"]) == ("lead-1", "leads")
    leads = (await api.get("/api/v1/tickets", group="leads")).json()["items"]
    assert [t["id"] for t in leads] == [ticket]
    engine = app.state.tickets.engine
    async with engine.connect() as conn:
        escalations = await conn.scalar(
            select(func.count()).where(
                events.c.stream_id == ticket, events.c.type == TicketEscalated.type_name
            )
        )
    assert escalations == 1
