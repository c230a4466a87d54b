"""What an assessment sets off: given the last standing and a new risk, these events."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from libs.events.catalog.alerts import (
    AlertClosed,
    AlertOpened,
    ChurnRiskChanged,
    ChurnRiskRaised,
    FollowUpTaskRequested,
    Reason,
    ReminderDue,
    RiskLevel,
)
from services.alerts.domain.alerting import Standing, react
from services.alerts.domain.facts import Fact, FactKind, as_of
from services.alerts.domain.reminders import Birthday, FollowedTask, due_reminders, next_birthday
from services.alerts.domain.risk import ChurnRisk
from services.alerts.domain.rules import InvalidRules, check_rules, default_rules
from services.alerts.domain.weekly import list_due, week_bounds

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


def test_staying_high_at_the_same_score_sets_nothing_off() -> None:
    reaction = react("acme", Standing("high", 4, "a-1", None, score=90), risk("high", 90), NOW)
    assert reaction.events == [] and reaction.open_alert_id == "a-1"


def test_a_move_within_high_tells_the_score_and_nothing_more() -> None:
    reaction = react("acme", Standing("high", 4, "a-1", None, score=80), risk("high", 90), NOW)
    (changed,) = reaction.events
    assert isinstance(changed, ChurnRiskChanged)
    assert (changed.from_level, changed.to_level, changed.score) == ("high", "high", 90)
    assert reaction.open_alert_id == "a-1"


def test_leaving_high_closes_the_alert() -> None:
    reaction = react("acme", Standing("high", 4, "a-1", None), risk("low", 20), NOW)
    changed, closed = reaction.events
    assert isinstance(changed, ChurnRiskChanged) and changed.from_level == "high"
    assert isinstance(closed, AlertClosed)
    assert (closed.alert_id, closed.closure) == ("a-1", "left_risk_level")
    assert reaction.open_alert_id is None


def test_a_rise_to_medium_opens_an_alert_without_a_follow_up() -> None:
    reaction = react("acme", Standing("low", 2, None, "rep-1"), risk("medium", 40), NOW)
    changed, opened = reaction.events
    assert isinstance(changed, ChurnRiskChanged) and changed.to_level == "medium"
    assert isinstance(opened, AlertOpened) and (opened.level, opened.score) == ("medium", 40)
    assert reaction.open_alert_id == opened.alert_id


def test_a_tenant_that_alerts_on_high_only_sees_a_rise_to_medium_as_a_change_only() -> None:
    rules = default_rules().model_copy(update={"alert_levels": ["high"]})
    reaction = react("acme", Standing("none", 0, None, None), risk("medium", 40), NOW, rules)
    assert [type(e) for e in reaction.events] == [ChurnRiskChanged]


def test_a_tenant_may_ask_for_follow_ups_at_medium_too() -> None:
    rules = default_rules().model_copy(update={"follow_up_levels": ["medium", "high"]})
    reaction = react("acme", Standing("low", 2, None, "rep-1"), risk("medium", 40), NOW, rules)
    assert [type(e) for e in reaction.events] == [
        ChurnRiskChanged,
        AlertOpened,
        FollowUpTaskRequested,
    ]


def test_rising_from_medium_to_high_closes_the_medium_alert_and_opens_a_high_one() -> None:
    standing = Standing("medium", 5, "a-medium", "rep-1", "medium")
    reaction = react("acme", standing, risk("high", 70), NOW)
    _, closed, raised, opened, task = reaction.events
    assert isinstance(closed, AlertClosed)
    assert (closed.alert_id, closed.closure) == ("a-medium", "left_risk_level")
    assert isinstance(raised, ChurnRiskRaised)
    assert isinstance(opened, AlertOpened) and opened.level == "high"
    assert isinstance(task, FollowUpTaskRequested) and task.alert_id == opened.alert_id
    assert reaction.open_alert_id == opened.alert_id != "a-medium"


def test_falling_from_high_to_medium_closes_the_high_alert_and_opens_none() -> None:
    reaction = react("acme", Standing("high", 6, "a-high", None, "high"), risk("medium", 40), NOW)
    _, closed = reaction.events
    assert isinstance(closed, AlertClosed) and closed.alert_id == "a-high"
    assert reaction.open_alert_id is None


def test_a_medium_alert_stays_open_through_high_when_the_tenant_alerts_on_medium_only() -> None:
    rules = default_rules().model_copy(update={"alert_levels": ["medium"], "follow_up_levels": []})
    up = react("acme", Standing("medium", 5, "a-m", None, "medium"), risk("high", 70), NOW, rules)
    assert [type(e) for e in up.events] == [ChurnRiskChanged, ChurnRiskRaised]
    assert up.open_alert_id == "a-m"
    down = react("acme", Standing("high", 6, "a-m", None, "medium"), risk("medium", 40), NOW, rules)
    assert [type(e) for e in down.events] == [ChurnRiskChanged]
    assert down.open_alert_id == "a-m"
    gone = react("acme", Standing("medium", 7, "a-m", None, "medium"), risk("low", 15), NOW, rules)
    assert [type(e) for e in gone.events] == [ChurnRiskChanged, AlertClosed]


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


def test_an_open_task_past_its_due_time_reminds_its_assignee_once_per_due_time() -> None:
    rules = default_rules()
    due = FollowedTask("task-1", "rep-7", NOW - timedelta(hours=2))
    later = FollowedTask("task-2", "rep-7", NOW + timedelta(hours=2))

    def reminders(*tasks: FollowedTask) -> list[ReminderDue]:
        return due_reminders("acme", "c-1", as_of([], NOW), None, None, rules, tasks)

    (overdue,) = reminders(due, later)
    assert (overdue.kind, overdue.assignee_id, overdue.subject_id) == (
        "task_overdue",
        "rep-7",
        "task-1",
    )
    assert overdue.due_on == date(2026, 11, 30)
    assert overdue.sentence.startswith("Follow-up task task-1 was due on 2026-11-30")
    # The same task at the same due time is the same reminder (fires once) ...
    assert reminders(due)[0].reminder_id == overdue.reminder_id
    # ... rescheduled and overdue again, a new one.
    moved = FollowedTask("task-1", "rep-7", NOW - timedelta(hours=1))
    assert reminders(moved)[0].reminder_id != overdue.reminder_id


def test_the_weekly_list_is_due_monday_0900_in_the_tenants_time_zone() -> None:
    shanghai, new_york = ZoneInfo("Asia/Shanghai"), ZoneInfo("America/New_York")
    monday_0859 = datetime(2026, 11, 30, 8, 59, tzinfo=shanghai)
    monday_0900 = datetime(2026, 11, 30, 9, 0, tzinfo=shanghai)

    assert list_due(monday_0900, shanghai) == ("2026-W48", monday_0900)
    # A minute earlier, last week's list (of the week before) is the one due.
    assert list_due(monday_0859, shanghai) == ("2026-W47", monday_0900 - timedelta(days=7))
    # 09:00 in Shanghai is Sunday evening in New York: the list there is not due yet.
    assert list_due(monday_0900, new_york)[0] == "2026-W47"
    # The week in the tenant's zone: Shanghai's week 49 began Sunday 16:00 UTC.
    before, _ = week_bounds("2026-W49", NOW + timedelta(days=3), shanghai)
    assert before == datetime(2026, 11, 29, 16, tzinfo=UTC) - timedelta(microseconds=1)


def test_rules_refuse_a_follow_up_level_without_an_alert_and_an_unknown_time_zone() -> None:
    rules = default_rules()
    with pytest.raises(InvalidRules) as no_alert:
        check_rules(
            rules.model_copy(update={"alert_levels": ["high"], "follow_up_levels": ["medium"]})
        )
    with pytest.raises(InvalidRules) as no_zone:
        check_rules(rules.model_copy(update={"time_zone": "Mars/Olympus"}))
    assert (no_alert.value.field, no_zone.value.field) == ("follow_up_levels", "time_zone")


def test_a_birthday_reminds_the_owner_days_before_once_a_year_without_naming_it() -> None:
    rules = default_rules()  # 7 days ahead, UTC
    born = Birthday(12, 5)

    def reminders(at: datetime, **changes: object) -> list[ReminderDue]:
        ruled = rules.model_copy(update=changes)
        return due_reminders("acme", "c-1", as_of([], at), "rep-1", None, ruled, (), born)

    assert reminders(NOW - timedelta(days=3)) == []  # 8 days ahead: not yet
    (first,) = reminders(NOW - timedelta(days=2))
    (again,) = reminders(NOW + timedelta(days=5))  # the day itself: the same reminder
    (next_year,) = reminders(NOW + timedelta(days=365))
    assert reminders(NOW + timedelta(days=6)) == []  # past it: next year's is months away
    assert (first.kind, first.assignee_id, first.customer_id) == ("birthday", "rep-1", "c-1")
    # The event names neither the birthday nor its month and day: it fired on 28 November.
    assert first.due_on == date(2026, 11, 28) and "12" not in first.sentence
    assert "Birthday within the next 7 days" in first.sentence
    assert again.reminder_id == first.reminder_id != next_year.reminder_id
    assert reminders(NOW, birthday_days=None) == []
    assert reminders(NOW, birthday_days=2) == []
    assert (
        due_reminders("acme", "c-1", as_of([], NOW), None, None, rules, (), born) == []
    )  # nobody owns the customer: nobody to remind


def test_a_birthday_is_counted_in_the_tenants_time_zone_and_across_the_new_year() -> None:
    rules = default_rules().model_copy(update={"birthday_days": 0, "time_zone": "Asia/Tokyo"})
    # 31 December 20:00 UTC is already 1 January in Tokyo.
    late = datetime(2026, 12, 31, 20, tzinfo=UTC)
    (today,) = due_reminders(
        "acme", "c-1", as_of([], late), "rep-1", None, rules, (), Birthday(1, 1)
    )
    in_utc = rules.model_copy(update={"time_zone": "UTC"})
    assert (
        due_reminders("acme", "c-1", as_of([], late), "rep-1", None, in_utc, (), Birthday(1, 1))
        == []
    )
    assert today.due_on == date(2027, 1, 1) and today.sentence.startswith("Birthday today")
    # Born on 29 February: the 28th in a year without one; next year of the birthday.
    assert next_birthday(Birthday(2, 29), date(2027, 2, 1)) == date(2027, 2, 28)
    assert next_birthday(Birthday(2, 29), date(2027, 3, 1)) == date(2028, 2, 29)
    assert next_birthday(Birthday(1, 2), date(2026, 12, 28)) == date(2027, 1, 2)
