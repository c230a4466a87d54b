"""What an assessment sets off: given the last standing and a new risk, these events."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from libs.events.catalog.alerts import (
    AlertClosed,
    AlertOpened,
    ChurnRiskChanged,
    ChurnRiskRaised,
    FollowUpTaskRequested,
    Reason,
    RiskLevel,
)
from services.alerts.domain.alerting import Standing, react
from services.alerts.domain.facts import Fact, FactKind, as_of
from services.alerts.domain.reminders import due_reminders
from services.alerts.domain.risk import ChurnRisk
from services.alerts.domain.rules import default_rules

NOW = datetime(2026, 11, 30, 9, tzinfo=UTC)
WHY = Reason(signal="key_contact_changed", contribution=40, sentence="s", event_ids=["e1"])


def risk(level: RiskLevel, score: int) -> ChurnRisk:
    return ChurnRisk("c-1", score, level, (WHY,))


def test_a_rise_to_high_raises_opens_an_alert_and_asks_the_owner_for_a_follow_up() -> None:
    reaction = react("acme", Standing("medium", 3, None, "rep-1"), risk("high", 65), NOW)

    changed, raised, opened, task = reaction.events
    assert isinstance(changed, ChurnRiskChanged) and changed.to_level == "high"
    assert isinstance(raised, ChurnRiskRaised) and raised.reasons == [WHY]
    assert isinstance(opened, AlertOpened) and opened.alert_id == reaction.open_alert_id
    assert isinstance(task, FollowUpTaskRequested)
    assert (task.owner_id, task.due_at) == ("rep-1", NOW + timedelta(days=1))
    assert task.alert_id == opened.alert_id
    assert task.title == "Churn risk 65/100: key contact changed"


def test_the_same_rise_replayed_names_the_same_alert_and_task() -> None:
    standing = Standing("medium", 3, None, "rep-1")
    first = react("acme", standing, risk("high", 65), NOW).events
    again = react("acme", standing, risk("high", 65), NOW + timedelta(hours=1)).events
    assert isinstance(first[3], FollowUpTaskRequested)
    assert isinstance(again[3], FollowUpTaskRequested)
    assert first[3].task_id == again[3].task_id
    later = react("acme", Standing("medium", 9, None, "rep-1"), risk("high", 65), NOW).events
    assert isinstance(later[3], FollowUpTaskRequested)
    assert later[3].task_id != first[3].task_id  # a later rise is a new alert


def test_staying_high_sets_nothing_off() -> None:
    reaction = react("acme", Standing("high", 4, "a-1", None), risk("high", 90), NOW)
    assert reaction.events == [] and reaction.open_alert_id == "a-1"


def test_leaving_high_closes_the_alert() -> None:
    reaction = react("acme", Standing("high", 4, "a-1", None), risk("low", 20), NOW)
    changed, closed = reaction.events
    assert isinstance(changed, ChurnRiskChanged) and changed.from_level == "high"
    assert isinstance(closed, AlertClosed)
    assert (closed.alert_id, closed.closure) == ("a-1", "left_risk_level")
    assert reaction.open_alert_id is None


def test_a_move_below_high_is_a_change_only() -> None:
    reaction = react("acme", Standing("none", 0, None, None), risk("medium", 40), NOW)
    assert [type(e) for e in reaction.events] == [ChurnRiskChanged]


def test_a_contract_ending_within_the_reminder_days_reminds_the_owner_once_per_end_date() -> None:
    signed = Fact(
        FactKind.CONTRACT_SIGNED, NOW - timedelta(days=300), "k", ref="k1", until=date(2026, 12, 20)
    )
    renewed = Fact(
        FactKind.CONTRACT_RENEWED, NOW - timedelta(days=1), "r", ref="k1", until=date(2026, 12, 25)
    )
    rules = default_rules()

    (first,) = due_reminders("acme", "c-1", as_of([signed], NOW), "rep-1", None, rules)
    again = due_reminders(
        "acme", "c-1", as_of([signed], NOW + timedelta(days=2)), "rep-1", None, rules
    )
    moved = due_reminders("acme", "c-1", as_of([signed, renewed], NOW), "rep-1", None, rules)

    assert (first.kind, first.assignee_id, first.due_on) == (
        "contract_renewal",
        "rep-1",
        date(2026, 12, 20),
    )
    assert first.sentence.startswith("Contract k1 ends in 20 days")
    assert again[0].reminder_id == first.reminder_id
    assert moved[0].reminder_id != first.reminder_id


def test_an_owned_customer_gone_quiet_is_a_reminder_until_the_next_interaction() -> None:
    talked = Fact(FactKind.INTERACTION, NOW - timedelta(days=61), "i1")
    rules = default_rules()

    (quiet,) = due_reminders("acme", "c-1", as_of([talked], NOW), "rep-1", None, rules)
    unowned = due_reminders("acme", "c-1", as_of([talked], NOW), None, None, rules)
    recent = Fact(FactKind.INTERACTION, NOW - timedelta(days=5), "i2")
    after = due_reminders("acme", "c-1", as_of([talked, recent], NOW), "rep-1", None, rules)

    assert quiet.kind == "no_interaction" and quiet.sentence.startswith("61 days with no")
    assert unowned == [] and after == []
