"""The Ticket aggregate: given events, when a command, then events or a named error."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from libs.events.catalog import DomainEvent
from libs.events.catalog.tickets import (
    FollowUpVisitRecorded,
    SlaBreached,
    SlaPolicyApplied,
    TicketOpened,
    TicketReopened,
    TicketReplied,
    TicketStatusChanged,
)
from services.tickets.commands import (
    ChangePriority,
    ChangeStatus,
    OpenTicket,
    RecordBreach,
    RecordFollowUpVisit,
    ReopenTicket,
    ReplyToTicket,
)
from services.tickets.domain.calendar import STANDARD
from services.tickets.domain.ticket import (
    AppliedSla,
    FollowUpVisitMissing,
    NoBreach,
    NotSolvedYet,
    Ticket,
    TicketClosed,
    decide,
    decide_open,
    fold,
    next_due,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
T0 = datetime.combine(date(2026, 12, 4), time(10), SHANGHAI)  # a Friday, 10:00
SLA = AppliedSla("default", 1, "standard", 0, {"first_response": 60, "resolution": 8 * 60})


def given(*events: DomainEvent, at: datetime = T0) -> Ticket:
    ticket = fold((e, at + timedelta(minutes=i)) for i, e in enumerate(events))
    assert ticket is not None
    return ticket


def opened(category: str = "complaint") -> list[DomainEvent]:
    command = OpenTicket(customer_id="c1", subject="Late delivery", category=category)  # type: ignore[arg-type]
    return decide_open(command, "t1", "agent", SLA)


def solved(category: str = "complaint") -> list[DomainEvent]:
    ticket = given(*opened(category))
    return [
        *opened(category),
        *decide(ChangeStatus(ticket_id="t1", by="a", status="solved"), ticket, T0),
    ]


def visit(satisfied: bool) -> RecordFollowUpVisit:
    return RecordFollowUpVisit(
        ticket_id="t1", by="a", visit_id="v1", visited_by="a", visited_at=T0, satisfied=satisfied
    )


def close() -> ChangeStatus:
    return ChangeStatus(ticket_id="t1", by="a", status="closed")


def test_opening_applies_the_policy_s_targets_in_the_ticket_s_stream() -> None:
    events = opened()
    assert [type(e) for e in events] == [TicketOpened, SlaPolicyApplied]
    assert events[1].resolution_minutes == 480  # type: ignore[attr-defined]


def test_a_complaint_cannot_be_closed_without_a_follow_up_visit() -> None:
    with pytest.raises(FollowUpVisitMissing):
        decide(close(), given(*solved()), T0)


def test_a_complaint_is_closed_once_a_visit_found_the_customer_satisfied() -> None:
    ticket = given(*solved())
    events = [*solved(), *decide(visit(True), ticket, T0)]

    assert decide(close(), given(*events), T0) == [
        TicketStatusChanged(
            ticket_id="t1", customer_id="c1", from_status="solved", to_status="closed", by="a"
        )
    ]


def test_an_unsatisfied_customer_reopens_the_complaint() -> None:
    ticket = given(*solved())
    outcome = decide(visit(False), ticket, T0)

    assert [type(e) for e in outcome] == [FollowUpVisitRecorded, TicketReopened]
    assert given(*solved(), *outcome).status == "open"


def test_a_satisfied_visit_before_a_reopening_does_not_close_the_loop() -> None:
    history = [*solved(), *decide(visit(True), given(*solved()), T0)]
    history += decide(ReopenTicket(ticket_id="t1", by="a"), given(*history), T0)
    history += decide(ChangeStatus(ticket_id="t1", by="a", status="solved"), given(*history), T0)

    with pytest.raises(FollowUpVisitMissing):
        decide(close(), given(*history), T0)


def test_a_question_closes_without_a_visit_but_only_once_solved() -> None:
    with pytest.raises(NotSolvedYet):
        decide(close(), given(*opened("question")), T0)
    assert decide(close(), given(*solved("question")), T0)


def test_a_closed_ticket_is_final() -> None:
    history = [*solved("question")]
    history += decide(close(), given(*history), T0)
    with pytest.raises(TicketClosed):
        decide(ReplyToTicket(ticket_id="t1", by="a", body="hello"), given(*history), T0)


def test_only_the_first_public_reply_is_the_first_response() -> None:
    note = decide(
        ReplyToTicket(ticket_id="t1", by="a", body="n", public=False), given(*opened()), T0
    )
    assert note[0].first_response is False  # type: ignore[attr-defined]

    first = decide(ReplyToTicket(ticket_id="t1", by="a", body="hi"), given(*opened(), *note), T0)
    second = decide(
        ReplyToTicket(ticket_id="t1", by="a", body="again"), given(*opened(), *note, *first), T0
    )
    assert [first[0].first_response, second[0].first_response] == [True, False]  # type: ignore[attr-defined]


def test_a_breach_is_recorded_only_once_the_target_is_missed_and_only_once() -> None:
    ticket = given(*opened())
    with pytest.raises(NoBreach):
        decide(
            RecordBreach(ticket_id="t1", by="sla", target="first_response"),
            ticket,
            T0,
            calendar=STANDARD,
        )

    later = T0 + timedelta(hours=2)
    breach = decide(
        RecordBreach(ticket_id="t1", by="sla", target="first_response"),
        ticket,
        later,
        calendar=STANDARD,
    )
    assert breach == [
        SlaBreached(
            ticket_id="t1",
            customer_id="c1",
            target="first_response",
            due_at=T0 + timedelta(hours=1),
            priority="normal",
            policy="default",
        )
    ]
    with pytest.raises(NoBreach):
        decide(
            RecordBreach(ticket_id="t1", by="sla", target="first_response"),
            given(*opened(), *breach),
            later,
            calendar=STANDARD,
        )


def test_a_policy_change_mid_ticket_applies_at_the_next_priority_change_measured_from_opening() -> (
    None
):
    ticket = given(*opened())
    assert ticket.sla_states(STANDARD, T0)["resolution"].due_at == T0 + timedelta(hours=8)

    stricter = AppliedSla("default", 2, "standard", 0, {"first_response": 30, "resolution": 120})
    raised = decide(
        ChangePriority(ticket_id="t1", by="a", priority="urgent"), ticket, T0, sla=stricter
    )
    now = given(*opened(), *raised)

    assert now.priority == "urgent"
    assert now.sla_states(STANDARD, T0)["resolution"].due_at == T0 + timedelta(hours=2)
    assert next_due(now, STANDARD, T0) == T0 + timedelta(minutes=30)


def test_a_breach_recorded_stays_a_breach_after_a_later_policy_allows_more_time() -> None:
    late = T0 + timedelta(hours=2)
    breach = decide(
        RecordBreach(ticket_id="t1", by="sla", target="first_response"),
        given(*opened()),
        late,
        calendar=STANDARD,
    )
    lenient = SlaPolicyApplied(
        ticket_id="t1",
        customer_id="c1",
        policy="default",
        policy_version=3,
        calendar="standard",
        calendar_version=0,
        priority="low",
        first_response_minutes=600,
    )
    ticket = given(*opened(), *breach, lenient)

    assert ticket.sla_states(STANDARD, late)["first_response"].outcome == "breached"
    assert next_due(ticket, STANDARD, late) is None


def test_pending_pauses_resolution_so_nothing_is_due_for_it() -> None:
    ticket = given(*opened())
    pending = decide(ChangeStatus(ticket_id="t1", by="a", status="pending"), ticket, T0)
    replied = TicketReplied(
        ticket_id="t1",
        customer_id="c1",
        reply_id="r",
        public=True,
        body="b",
        by="a",
        first_response=True,
    )
    paused = given(*opened(), replied, *pending)

    assert paused.sla_states(STANDARD, T0)["resolution"].clock == "paused"
    assert next_due(paused, STANDARD, T0) is None


def test_a_retried_visit_is_recorded_once() -> None:
    history = [*solved()]
    history += decide(visit(False), given(*history), T0)

    assert decide(visit(False), given(*history), T0) == []


def test_a_stream_that_is_not_a_ticket_s_is_no_ticket() -> None:
    from libs.events.catalog.tickets import SlaPolicyDefined

    policy = SlaPolicyDefined(policy="default", version=1, calendar="standard", targets={})
    assert fold([(policy, T0)]) is None
