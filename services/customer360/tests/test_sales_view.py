"""How the pipeline service's events fill the 360 view's sales section: pure, no I/O."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

from libs.events.catalog import DomainEvent
from libs.events.catalog.pipeline import (
    ContractRenewed,
    ContractSigned,
    ContractTerminated,
    DealOpened,
    DealStageChanged,
    DealWon,
    Line,
    OrderCancelled,
    OrderPlaced,
    OrderRefunded,
    QuoteAttached,
    TaskCompleted,
    TaskCreated,
    TaskRescheduled,
)
from services.customer360.domain.from_pipeline import PIPELINE
from services.customer360.domain.sections import money
from services.customer360.domain.view import CustomerView, Fact, Outcome, forget

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
C = "c-1"


def fact(n: int) -> Fact:
    return Fact(event_id=f"p-{n}", type="t", time=T0 + timedelta(minutes=n), stream_id="s",
                sequence=n, topic="crm.pipeline.events", partition=0, offset=n)


def apply_all(events: Sequence[DomainEvent], view: CustomerView | None = None
              ) -> tuple[CustomerView, list[Outcome]]:
    view = view or CustomerView("acme", C)
    outcomes = []
    for n, event in enumerate(events, start=1):
        registered = PIPELINE.applier_for(event)
        assert registered is not None, type(event).__name__
        assert registered.customer_of(event) == C
        outcome = registered.apply(view, event, fact(n))
        outcomes.append(outcome)
        view = outcome.view
    return view, outcomes


def deal(deal_id: str = "d-1", title: str = "Fleet renewal for Li Na") -> DealOpened:
    return DealOpened(deal_id=deal_id, customer_id=C, title=title, amount=1_299_00,
                      currency="CNY", stage="proposal", probability=40,
                      expected_close_on=date(2026, 4, 1), owner_id="u-1")


def order(order_id: str, total: int, *, days_ago: int = 0, currency: str = "CNY"
          ) -> OrderPlaced:
    return OrderPlaced(order_id=order_id, customer_id=C, currency=currency, total=total,
                       lines=[Line(line_no=1, sku="A", name="Part", quantity=1,
                                   unit_price=total)],
                       placed_at=T0 - timedelta(days=days_ago))


def test_an_open_deal_shows_its_stage_and_latest_quote_until_it_is_won() -> None:
    view, outcomes = apply_all([
        deal(),
        DealStageChanged(deal_id="d-1", customer_id=C, from_stage="proposal",
                         to_stage="negotiation", probability=70),
        QuoteAttached(deal_id="d-1", customer_id=C, quote_id="q-1", currency="CNY",
                      lines=[], total=1_199_00),
    ])
    [shown] = view.sections["deals"]
    assert (shown["stage"], shown["probability"]) == ("negotiation", 70)
    assert shown["quote"]["total"] == 1_199_00
    assert [o.entry.summary for o in outcomes if o.entry] == [
        "Deal opened: Fleet renewal for Li Na (1,299.00 CNY), proposal",
        "Deal d-1 moved from proposal to negotiation",
        "Quote q-1 for deal d-1: 1,199.00 CNY",
    ]

    won, _ = apply_all([DealWon(deal_id="d-1", customer_id=C, amount=1_199_00,
                                currency="CNY")], view)
    assert won.sections["deals"] == []


def test_purchase_figures_count_orders_less_refunds_and_cancellations_per_currency() -> None:
    view, outcomes = apply_all([
        order("o-1", 100_00, days_ago=400),
        order("o-2", 300_00, days_ago=10),
        order("o-2", 300_00, days_ago=10),  # the same order synced again: counted once
        order("o-3", 5_000, currency="JPY"),
        OrderRefunded(order_id="o-2", customer_id=C, refund_id="r-1", amount=50_00,
                      currency="CNY", remaining=250_00),
        OrderCancelled(order_id="o-1", customer_id=C),
    ])
    cny = view.sections["purchases"]["CNY"]
    assert (cny["orders"], cny["spent"], cny["refunded"]) == (1, 250_00, 50_00)
    assert cny["first_order_at"] == (T0 - timedelta(days=400)).isoformat()
    assert view.sections["purchases"]["JPY"]["spent"] == 5_000
    statuses = {o["order_id"]: o["status"] for o in view.sections["orders"]}
    assert statuses == {"o-1": "cancelled", "o-2": "partly_refunded", "o-3": "placed"}
    # Most recent first, by when they were placed; a migrated order reads as it happened.
    assert [o["order_id"] for o in view.sections["orders"]] == ["o-3", "o-2", "o-1"]
    assert outcomes[0].entry is not None
    assert outcomes[0].entry.time == T0 - timedelta(days=400)
    assert money(5_000, "JPY") == "5,000 JPY"


def test_contracts_stay_active_until_terminated_and_renewals_move_their_end() -> None:
    signed = [
        ContractSigned(contract_id=f"k-{n}", customer_id=C, title=f"Support {n}", value=10_000,
                       currency="EUR", starts_on=date(2026, 1, 1), ends_on=date(2026, 12, n))
        for n in (1, 2)
    ]
    view, _ = apply_all([
        *signed,
        ContractRenewed(contract_id="k-1", customer_id=C, previous_ends_on=date(2026, 12, 1),
                        ends_on=date(2027, 12, 1), value=12_000, currency="EUR"),
        ContractTerminated(contract_id="k-2", customer_id=C, reason="moved away",
                           terminated_on=date(2026, 6, 30)),
    ])
    [active] = view.sections["contracts"]
    assert (active["contract_id"], active["ends_on"], active["value"]) == (
        "k-1", "2027-12-01", 12_000)


def test_open_tasks_are_listed_soonest_first_and_a_leads_task_is_about_no_customer() -> None:
    view, _ = apply_all([
        TaskCreated(task_id="t-1", customer_id=C, title="Call back", due_at=T0 + timedelta(days=2),
                    assignee_id="u-1", created_by="u-1"),
        TaskCreated(task_id="t-2", customer_id=C, title="Send the quote",
                    due_at=T0 + timedelta(days=5), assignee_id="u-1", created_by="u-1"),
        TaskRescheduled(task_id="t-2", customer_id=C, previous_due_at=T0 + timedelta(days=5),
                        due_at=T0 + timedelta(days=1)),
        TaskCompleted(task_id="t-1", customer_id=C, by="u-1"),
    ])
    assert [t["task_id"] for t in view.sections["tasks"]] == ["t-2"]

    for_a_lead = TaskCreated(task_id="t-3", lead_id="l-1", title="Qualify", due_at=T0,
                             assignee_id="u-1", created_by="u-1")
    registered = PIPELINE.applier_for(for_a_lead)
    assert registered is not None and registered.customer_of(for_a_lead) is None


def test_erasure_blanks_the_free_text_of_the_sales_section_and_its_lines() -> None:
    view, outcomes = apply_all([deal(), TaskCreated(
        task_id="t-1", customer_id=C, title="Call Li Na", due_at=T0, assignee_id="u-1",
        created_by="u-1")])
    erased = forget(view, T0)
    assert erased.sections["deals"][0]["title"] == ""
    assert erased.sections["tasks"][0]["title"] == ""
    assert erased.sections["deals"][0]["amount"] == 1_299_00
    for outcome in outcomes:
        assert outcome.entry is not None and "Li Na" not in outcome.entry.redacted_summary
