"""The 360 view's churn risk and alerts: pure appliers, then through the real broker
(crm.alerts.events beside crm.contacts.events), with a merge and an erasure."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta

import pytest_asyncio

from libs.events.catalog import DomainEvent
from libs.events.catalog.alerts import (
    AlertAcknowledged,
    AlertClosed,
    AlertOpened,
    ChurnRiskChanged,
    FollowUpTaskRequested,
    Reason,
)
from libs.events.catalog.contacts import (
    CustomerMerged,
    CustomerMergedInto,
    CustomerRegistered,
    PersonalDataErased,
)
from libs.events.envelope import EventEnvelope
from libs.events.kafka import KafkaSettings, service_topic
from services.customer360.domain.from_alerts import ALERTS
from services.customer360.domain.view import CustomerView, Fact, Outcome, forget
from services.customer360.tests.conftest import (
    T0,
    ContactsTopic,
    CustomerStream,
    RunningProjector,
    eventually,
)

COMPLAINTS = Reason(
    signal="complaints_increase",
    contribution=25,
    sentence="2 complaints in the last 30 days, none in the 30 before.",
    event_ids=["t-2", "t-1"],
)
KEY_CONTACT = Reason(
    signal="key_contact_changed",
    contribution=40,
    sentence="The purchasing contact changed 5 days ago.",
    event_ids=["k-1"],
)


def rose(customer_id: str, to: str = "high", score: int = 65) -> ChurnRiskChanged:
    return ChurnRiskChanged(
        customer_id=customer_id,
        from_level="none",
        to_level=to,  # type: ignore[arg-type]
        score=score,
        reasons=[KEY_CONTACT, COMPLAINTS],
        owner_id="rep-1",
        as_of=T0,
    )


def opened(customer_id: str, alert_id: str = "a-1") -> AlertOpened:
    return AlertOpened(
        alert_id=alert_id,
        customer_id=customer_id,
        level="high",
        score=65,
        reasons=[KEY_CONTACT, COMPLAINTS],
        owner_id="rep-1",
    )


def apply_all(events: Sequence[DomainEvent]) -> tuple[CustomerView, list[Outcome]]:
    view = CustomerView("acme", "c-1")
    outcomes = []
    for n, event in enumerate(events, start=1):
        registered = ALERTS.applier_for(event)
        assert registered is not None, type(event).__name__
        fact = Fact(f"e-{n}", type(event).type_name, T0 + timedelta(minutes=n), "c-1", n,
                    "crm.alerts.events", 0, n)
        outcome = registered.apply(view, event, fact)
        outcomes.append(outcome)
        view = outcome.view
    return view, outcomes


def test_the_view_shows_the_risk_with_its_reasons_and_each_alert_with_its_status() -> None:
    view, outcomes = apply_all([
        rose("c-1"),
        opened("c-1"),
        AlertAcknowledged(alert_id="a-1", customer_id="c-1", by="rep-1"),
        AlertClosed(alert_id="a-1", customer_id="c-1", closure="dismissed",
                    reason="Wang says they are only on holiday", by="rep-1"),
    ])

    risk = view.sections["churn_risk"]
    assert (risk["level"], risk["score"]) == ("high", 65)
    assert [r["signal"] for r in risk["reasons"]] == ["key_contact_changed", "complaints_increase"]
    assert risk["reasons"][1]["event_ids"] == ["t-2", "t-1"]
    assert risk["reasons"][0]["contribution"] == 40
    (alert,) = view.sections["alerts"]
    assert (alert["alert_id"], alert["status"]) == ("a-1", "dismissed")
    assert alert["note"] == "Wang says they are only on holiday"
    lines = [o.entry for o in outcomes]
    assert all(line is not None for line in lines)
    summaries = [line.summary for line in lines if line is not None]
    assert summaries[0] == (
        "Churn risk rose from none to high (65/100): key contact changed, complaints increase"
    )
    assert summaries[1].startswith("Churn alert opened at high risk (65/100)")
    assert summaries[2] == "Churn alert acknowledged by rep-1"
    # The dismissal's reason is free text: on the line, not on its redacted twin.
    assert summaries[3].endswith("only on holiday")
    assert lines[3] is not None and lines[3].redacted_summary == "Churn alert dismissed by rep-1"
    assert forget(view, T0).sections["alerts"][0]["note"] == ""


def test_falling_risk_and_an_alert_closed_by_the_fall_read_as_such() -> None:
    view, outcomes = apply_all([
        rose("c-1"),
        opened("c-1"),
        ChurnRiskChanged(customer_id="c-1", from_level="high", to_level="low", score=20,
                         reasons=[COMPLAINTS], as_of=T0 + timedelta(days=40)),
        AlertClosed(alert_id="a-1", customer_id="c-1", closure="left_risk_level"),
    ])
    assert view.sections["churn_risk"]["level"] == "low"
    assert view.sections["alerts"][0]["status"] == "left_risk_level"
    assert outcomes[2].entry is not None
    assert outcomes[2].entry.summary.startswith("Churn risk fell from high to low (20/100)")
    assert outcomes[2].entry.time == T0 + timedelta(days=40)
    # What alerts asks of the pipeline is the pipeline's to show (its task events).
    assert ALERTS.applier_for(FollowUpTaskRequested(
        alert_id="a-1", customer_id="c-1", title="t", due_at=T0, task_id="x")) is None


def test_a_move_of_the_score_within_its_level_updates_the_risk_without_a_timeline_line() -> None:
    view, outcomes = apply_all([
        rose("c-1", to="high", score=65),
        ChurnRiskChanged(customer_id="c-1", from_level="high", to_level="high", score=80,
                         reasons=[KEY_CONTACT, COMPLAINTS], as_of=T0 + timedelta(days=3),
                         no_purchase_probability=0.62, predicted_value=48_000,
                         revenue_at_risk=29_760),
    ])

    risk = view.sections["churn_risk"]
    assert (risk["level"], risk["score"], risk["revenue_at_risk"]) == ("high", 80, 29_760)
    assert (risk["no_purchase_probability"], risk["predicted_value"]) == (0.62, 48_000)
    assert outcomes[1].entry is None


@pytest_asyncio.fixture
async def alerts(kafka: KafkaSettings) -> AsyncIterator[ContactsTopic]:
    topic = ContactsTopic(kafka, service_topic("alerts"))
    yield topic
    await topic.close()


class AlertsStream:
    """The customer's stream in the alerts service (its id is the customer's)."""

    def __init__(self, tenant_id: str, customer_id: str) -> None:
        self.tenant_id, self.customer_id, self.version = tenant_id, customer_id, 0

    def __call__(self, event: DomainEvent, minutes: int) -> EventEnvelope:
        self.version += 1
        return EventEnvelope(
            id=str(uuid.uuid4()), source="/crm/alerts", type=type(event).type_name,
            subject=self.customer_id, time=T0 + timedelta(minutes=minutes),
            tenantid=self.tenant_id, partitionkey=self.customer_id, sequence=self.version,
            data=event.model_dump(mode="json"),
        )


async def test_the_360_view_follows_the_alerts_topic_through_a_merge_and_an_erasure(
    projector: RunningProjector, contacts: ContactsTopic, alerts: ContactsTopic
) -> None:
    keep, dup = CustomerStream("acme"), CustomerStream("acme")
    for stream in (keep, dup):
        await contacts.publish(stream(CustomerRegistered(
            customer_id=stream.customer_id, tenant_id="acme", kind="company", name="ACME",
            registered_at=T0)))
    on_dup, on_keep = AlertsStream("acme", dup.customer_id), AlertsStream("acme", keep.customer_id)
    first = on_dup(rose(dup.customer_id), 10)
    await alerts.publish(first, on_dup(opened(dup.customer_id), 11))

    async def dup_alerted() -> bool:
        view = await projector.reader.view("acme", dup.customer_id)
        return view is not None and view.churn_risk is not None and bool(view.alerts)

    await eventually(dup_alerted)
    # The same event again (a relay retry): nothing changes, no second line.
    await alerts.publish(first)
    # Merged: alerts closes the duplicate's alert and files the risk under the survivor.
    await contacts.publish(
        dup(CustomerMergedInto(customer_id=dup.customer_id, survivor_id=keep.customer_id)),
        keep(CustomerMerged(customer_id=keep.customer_id, duplicate_id=dup.customer_id)),
    )
    await alerts.publish(
        on_dup(ChurnRiskChanged(customer_id=dup.customer_id, from_level="high",
                                to_level="none", score=0, as_of=T0), 20),
        on_dup(AlertClosed(alert_id="a-1", customer_id=dup.customer_id,
                           closure="left_risk_level", reason="merged"), 21),
        on_keep(rose(keep.customer_id), 22),
        on_keep(opened(keep.customer_id, "a-2"), 23),
    )

    async def survivor_alerted() -> bool:
        view = await projector.reader.view("acme", keep.customer_id)
        return view is not None and any(a.alert_id == "a-2" for a in view.alerts)

    await eventually(survivor_alerted)
    # The duplicate's id answers with the survivor's view: its risk and its alert.
    view = await projector.reader.view("acme", dup.customer_id)
    assert view is not None and view.customer_id == keep.customer_id
    assert view.churn_risk is not None
    assert (view.churn_risk.level, view.churn_risk.score) == ("high", 65)
    assert [r.signal for r in view.churn_risk.reasons] == [
        "key_contact_changed", "complaints_increase"]
    assert view.churn_risk.reasons[0].event_ids == ["k-1"]
    assert [(a.alert_id, a.status) for a in view.alerts] == [("a-2", "open")]
    lines = [t.summary for t in view.timeline if t.type.startswith("crm.alerts.")]
    # The survivor's own lines and the duplicate's (its history shows in the survivor's).
    assert sum(s.startswith("Churn alert opened") for s in lines) == 2
    assert sum(s.startswith("Churn risk rose") for s in lines) == 2

    await alerts.publish(on_keep(AlertClosed(
        alert_id="a-2", customer_id=keep.customer_id, closure="dismissed",
        reason="ACME's buyer Zhang is on leave", by="rep-1"), 30))

    async def dismissed() -> bool:
        view = await projector.reader.view("acme", keep.customer_id)
        return view is not None and view.alerts[0].status == "dismissed"

    await eventually(dismissed)
    await contacts.publish(keep(PersonalDataErased(
        customer_id=keep.customer_id, erased_at=T0 + timedelta(days=1), by="u-admin")))
    await projector.until_version("acme", keep.customer_id, keep.version)
    erased = await projector.reader.view("acme", keep.customer_id)
    assert erased is not None
    assert erased.alerts[0].note == ""
    assert not any("Zhang" in t.summary for t in erased.timeline)
    # Scores and reasons are ids and figures: they stay.
    assert erased.churn_risk is not None and erased.churn_risk.level == "high"
