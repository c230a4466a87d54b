"""How the tickets service's events fill the 360 view's service section: pure, no I/O."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from libs.events.catalog import DomainEvent
from libs.events.catalog.tickets import (
    CsatAnswered,
    FollowUpVisitRecorded,
    NpsAnswered,
    SlaBreached,
    SlaPolicyDefined,
    TicketAssigned,
    TicketOpened,
    TicketPriorityChanged,
    TicketReopened,
    TicketReplied,
    TicketStatusChanged,
)
from services.customer360.domain.from_tickets import TICKETS
from services.customer360.domain.view import CustomerView, Fact, Outcome, forget
from services.customer360.service import SERVICE

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
C = "c-1"


def fact(n: int) -> Fact:
    return Fact(event_id=f"t-{n}", type="t", time=T0 + timedelta(minutes=n), stream_id="s",
                sequence=n, topic="crm.tickets.events", partition=0, offset=n)


def apply_all(events: Sequence[DomainEvent], view: CustomerView | None = None
              ) -> tuple[CustomerView, list[Outcome]]:
    view = view or CustomerView("acme", C)
    outcomes = []
    for n, event in enumerate(events, start=1):
        registered = TICKETS.applier_for(event)
        assert registered is not None, type(event).__name__
        assert registered.customer_of(event) == C
        outcome = registered.apply(view, event, fact(n))
        outcomes.append(outcome)
        view = outcome.view
    return view, outcomes


def opened(ticket_id: str, *, category: str = "question", priority: str = "normal",
           subject: str = "Li Na's invoice is wrong") -> TicketOpened:
    return TicketOpened(ticket_id=ticket_id, customer_id=C, subject=subject,
                        description="Call me on 138 0000 0000", channel="phone",
                        category=category, priority=priority,  # type: ignore[arg-type]
                        requester_name="Li Na", opened_by="u-1")


def status(ticket_id: str, from_status: str, to_status: str) -> TicketStatusChanged:
    return TicketStatusChanged(ticket_id=ticket_id, customer_id=C, from_status=from_status,  # type: ignore[arg-type]
                               to_status=to_status, by="u-1")  # type: ignore[arg-type]


def test_tickets_are_listed_with_status_priority_and_breach_until_closed() -> None:
    view, outcomes = apply_all([
        opened("k-1"),
        opened("k-2", category="complaint", priority="high", subject="Broken delivery"),
        TicketAssigned(ticket_id="k-2", customer_id=C, assignee_id="a-7", group="care",
                       by="dispatch", rule="complaints"),
        TicketPriorityChanged(ticket_id="k-2", customer_id=C, from_priority="high",
                              to_priority="urgent", by="escalation"),
        SlaBreached(ticket_id="k-2", customer_id=C, target="first_response",
                    due_at=T0 + timedelta(hours=2), priority="urgent", policy="standard"),
        status("k-1", "open", "solved"),
        status("k-1", "solved", "closed"),
    ])
    [complaint] = view.sections["tickets"]
    assert complaint["ticket_id"] == "k-2"
    assert (complaint["status"], complaint["priority"], complaint["category"]) == (
        "open", "urgent", "complaint")
    assert complaint["sla_breached"] is True
    assert complaint["breached_targets"] == ["first_response"]
    assert complaint["assignee_id"] == "a-7"
    service = view.sections["service"]
    assert service["breaches"] == 1
    [breach] = service["recent_breaches"]
    assert (breach["ticket_id"], breach["target"]) == ("k-2", "first_response")
    # A breach is dated by when the target was due (business time), not when published.
    breached = outcomes[4].entry
    assert breached is not None and breached.time == T0 + timedelta(hours=2)
    assert [o.entry.summary for o in outcomes[:2] if o.entry] == [
        "Ticket k-1 opened (normal, phone): Li Na's invoice is wrong",
        "Complaint k-2 opened (high, phone): Broken delivery",
    ]


def test_a_solved_ticket_stays_listed_and_a_reopening_puts_it_back_to_open() -> None:
    view, _ = apply_all([
        opened("k-1", category="complaint"),
        status("k-1", "open", "solved"),
        FollowUpVisitRecorded(ticket_id="k-1", customer_id=C, visit_id="v-1", visited_by="u-2",
                              visited_at=T0 + timedelta(days=1), outcome="still broken",
                              satisfied=False),
        TicketReopened(ticket_id="k-1", customer_id=C, from_status="solved", by="u-2",
                       reason="customer unsatisfied at the follow-up visit"),
    ])
    [ticket] = view.sections["tickets"]
    assert (ticket["status"], ticket["follow_up_satisfied"]) == ("open", False)


def test_the_last_csat_and_nps_answers_are_the_latest_given() -> None:
    view, _ = apply_all([
        opened("k-1"),
        CsatAnswered(survey_id="s-1", customer_id=C, ticket_id="k-1", score=2,
                     satisfied=False, comment="slow"),
        CsatAnswered(survey_id="s-2", customer_id=C, ticket_id="k-1", score=5,
                     satisfied=True, comment="thanks Wang Wei"),
        NpsAnswered(survey_id="s-3", customer_id=C, score=9, group="promoter",
                    comment="great"),
    ])
    service = view.sections["service"]
    assert (service["last_csat"]["survey_id"], service["last_csat"]["score"]) == ("s-2", 5)
    assert (service["last_nps"]["score"], service["last_nps"]["group"]) == (9, "promoter")
    assert view.sections["tickets"][0]["csat"] == 5

    # An older answer arriving late (another survey's stream) does not replace it.
    late = CsatAnswered(survey_id="s-0", customer_id=C, ticket_id="k-1", score=1,
                        satisfied=False)
    registered = TICKETS.applier_for(late)
    assert registered is not None
    outcome = registered.apply(view, late, fact(0))
    assert outcome.view.sections["service"]["last_csat"]["survey_id"] == "s-2"


def test_erasure_blanks_subjects_and_comments_and_redacted_lines_leave_free_text_out() -> None:
    view, outcomes = apply_all([
        opened("k-1"),
        TicketReplied(ticket_id="k-1", customer_id=C, reply_id="r-1", public=True,
                      body="Dear Li Na, we are on it", by="a-1", first_response=True),
        TicketReopened(ticket_id="k-1", customer_id=C, from_status="solved", by="u-1",
                       reason="Li Na called again"),
        CsatAnswered(survey_id="s-1", customer_id=C, ticket_id="k-1", score=4,
                     satisfied=True, comment="Li Na is happy"),
        NpsAnswered(survey_id="s-2", customer_id=C, score=3, group="detractor",
                    comment="Li Na left"),
    ])
    erased = forget(view, T0)
    assert erased.sections["tickets"][0]["subject"] == ""
    assert erased.sections["tickets"][0]["priority"] == "normal"
    assert erased.sections["service"]["last_csat"]["comment"] == ""
    assert erased.sections["service"]["last_csat"]["score"] == 4
    assert erased.sections["service"]["last_nps"]["comment"] == ""
    for outcome in outcomes:
        assert outcome.entry is not None and "Li Na" not in outcome.entry.redacted_summary
    # A ticket opened after the erasure keeps no subject either.
    later, _ = apply_all([opened("k-2")], erased)
    assert all(t["subject"] == "" for t in later.sections["tickets"])


def test_tenant_level_ticket_events_are_about_no_customer() -> None:
    policy = SlaPolicyDefined(policy="standard", version=1, calendar="standard", targets={})
    assert TICKETS.applier_for(policy) is None


def test_a_rebuild_reads_every_source_topic_and_decodes_their_events() -> None:
    declaration = SERVICE.projections["customer360"]
    assert set(declaration.factory(1).topics) == {
        "crm.contacts.events", "crm.pipeline.events", "crm.tickets.events",
        "crm.loyalty.events", "crm.alerts.events"}
    assert {TicketOpened.type_name, "crm.loyalty.points_earned.v1",
            "crm.alerts.churn_risk_changed.v1"} <= set(declaration.catalog.types)
