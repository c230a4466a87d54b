"""Timeline lines as data: each line carries the event's facts and the human names of
what it is about, so a reader renders it in its own language; pure, no I/O."""

from __future__ import annotations

import importlib
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from libs.events.catalog import DomainEvent
from libs.events.catalog.pipeline import (
    DealOpened,
    DealStageChanged,
    Line,
    OrderPlaced,
    OrderRefunded,
)
from libs.events.catalog.tickets import TicketOpened, TicketStatusChanged
from services.customer360.domain.sources import SOURCES
from services.customer360.domain.view import (
    PERSONAL_FACTS,
    CustomerView,
    Fact,
    Outcome,
    redacted,
)

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
C = "c-1"


def apply_all(*events: DomainEvent) -> list[Outcome]:
    view = CustomerView("acme", C)
    outcomes = []
    for n, event in enumerate(events, start=1):
        registered = next(
            r for r in (s.applier_for(event) for s in SOURCES) if r is not None
        )
        fact = Fact(event_id=f"e-{n}", type=event.type_name, time=T0 + timedelta(minutes=n),
                    stream_id="s", sequence=n, topic="t", partition=0, offset=n)
        outcome = registered.apply(view, event, fact)
        outcomes.append(outcome)
        view = outcome.view
    return outcomes


def test_an_order_line_carries_its_amounts_and_the_order_number_not_only_its_id() -> None:
    *_, refunded = apply_all(
        OrderPlaced(order_id="o-1", customer_id=C, external_id="SO-2026-0042", currency="CNY",
                    total=12_900, lines=[Line(line_no=1, sku="A", name="Tea", quantity=1,
                                              unit_price=12_900)], placed_at=T0),
        OrderRefunded(order_id="o-1", customer_id=C, refund_id="r-1", amount=2_900,
                      currency="CNY", reason="Li Na: cracked lid", remaining=10_000),
    )
    assert refunded.entry is not None
    facts = refunded.entry.facts
    assert (facts["order_number"], facts["amount"], facts["currency"]) == (
        "SO-2026-0042", 2_900, "CNY")
    assert facts["reason"] == "Li Na: cracked lid"
    assert "customer_id" not in facts  # the line is on this customer's timeline
    assert "reason" not in redacted(refunded.entry.facts)
    assert redacted(refunded.entry.facts)["order_number"] == "SO-2026-0042"


def test_a_deal_and_a_ticket_are_named_by_their_title_and_subject_left_out_once_erased() -> None:
    moved, closed = (o.entry for o in apply_all(
        DealOpened(deal_id="d-1", customer_id=C, title="Fleet renewal for Li Na",
                   amount=1_299_00, currency="CNY", stage="proposal", probability=40,
                   owner_id="u-1"),
        DealStageChanged(deal_id="d-1", customer_id=C, from_stage="proposal",
                         to_stage="negotiation", probability=60),
        TicketOpened(ticket_id="k-1", customer_id=C, subject="Broken kettle", channel="phone",
                     category="complaint", priority="high", opened_by="u-1"),
        TicketStatusChanged(ticket_id="k-1", customer_id=C, from_status="open",
                            to_status="closed", by="u-1"),
    )[1::2])
    assert moved is not None and closed is not None
    assert (moved.facts["deal_title"], moved.facts["to_stage"]) == (
        "Fleet renewal for Li Na", "negotiation")
    # Closing takes the ticket out of the section: its subject comes from before.
    assert (closed.facts["ticket_subject"], closed.facts["to_status"]) == (
        "Broken kettle", "closed")
    assert "deal_title" not in redacted(moved.facts)
    assert "ticket_subject" not in redacted(closed.facts)
    assert redacted(closed.facts)["to_status"] == "closed"


def test_every_field_a_catalog_declares_personal_is_left_out_of_the_redacted_facts() -> None:
    for service in ("contacts", "pipeline", "tickets", "loyalty", "alerts"):
        policy = getattr(importlib.import_module(f"libs.events.catalog.{service}"),
                         "PERSONAL_DATA", None)
        if policy is None:
            continue
        for type_name, fields in policy.fields.items():
            assert set(fields) <= PERSONAL_FACTS, (type_name, set(fields) - PERSONAL_FACTS)


def test_the_console_words_every_line_the_view_writes() -> None:
    """A line of a type the console has no template for shows its English summary: the
    console (``js/timeline.js``) keeps a template for every type with an applier."""
    script = (Path(__file__).parents[2] / "gateway" / "console" / "js" / "timeline.js").read_text()
    worded = set(re.findall(r'^  "([a-z]+\.[a-z_]+)": ', script, re.M))
    written = {
        ".".join(event_type.type_name.split(".")[1:3])
        for source in SOURCES
        for event_type in source.appliers
    }
    assert written - worded == set()
    assert worded - written == set()
