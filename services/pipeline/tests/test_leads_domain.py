"""Lead rules: assignment by the tenant's rules and caps, qualification, conversion."""

from __future__ import annotations

import pytest

from libs.events.catalog import DomainEvent
from libs.events.catalog.pipeline import (
    AssignmentRule,
    LeadAssigned,
    LeadCaptured,
    LeadConverted,
    LeadDisqualified,
    LeadQualified,
)
from services.pipeline.commands import (
    AssignLead,
    CaptureLead,
    DefineAssignmentRules,
    DisqualifyLead,
    QualifyLead,
)
from services.pipeline.domain.leads import (
    InvalidRules,
    LeadClosed,
    LeadNotFound,
    LeadNotQualified,
    assign,
    capture,
    convert,
    decide,
    decide_rules,
    fold,
    fold_rules,
    rule_index,
)

RULES = (
    AssignmentRule(kind="territory", match="east", team=["amy", "bo"], cap=2),
    AssignmentRule(kind="industry", match="retail", team=["cai"]),
    AssignmentRule(kind="round_robin", team=["dan", "eve"], cap=1),
)


def lead(**fields: object) -> CaptureLead:
    data: dict[str, object] = {"lead_id": "l-1", "name": "周杰", "source": "web_form"}
    return CaptureLead.model_validate(data | fields)


def assigned(
    command: CaptureLead, open_leads: dict[str, int], last: dict[int, str]
) -> LeadAssigned:
    events = capture(None, command, RULES, open_leads, last)
    assert isinstance(events[0], LeadCaptured)
    assert isinstance(events[1], LeadAssigned)
    return events[1]


def test_a_lead_with_an_owner_is_assigned_by_hand() -> None:
    event = assigned(lead(owner_id="zoe", territory="east"), {}, {})
    assert (event.owner_id, event.rule) == ("zoe", "manual")


def test_the_first_matching_rule_assigns_and_turns_go_round() -> None:
    first = assigned(lead(territory="East"), {}, {})
    assert (first.owner_id, first.rule) == ("amy", "territory:east#0")
    assert rule_index(first) == 0
    second = assigned(lead(territory="east"), {"amy": 1}, {0: "amy"})
    assert second.owner_id == "bo"
    third = assigned(lead(territory="east"), {"amy": 1, "bo": 1}, {0: "bo"})
    assert third.owner_id == "amy"


def test_an_owner_at_the_cap_is_skipped() -> None:
    event = assigned(lead(territory="east"), {"amy": 2, "bo": 1}, {0: "bo"})
    assert event.owner_id == "bo"


def test_a_full_rule_passes_the_lead_on_and_no_room_anywhere_queues_it() -> None:
    full = {"amy": 2, "bo": 2}
    assert assigned(lead(territory="east"), full, {}).owner_id == "dan"
    assert assigned(lead(industry="retail"), {}, {}).owner_id == "cai"
    queued = assigned(lead(territory="east"), full | {"dan": 1, "eve": 1}, {})
    assert (queued.owner_id, queued.rule) == (None, "queue")
    assert rule_index(queued) is None


def test_without_rules_every_lead_queues() -> None:
    new = fold(capture(None, lead(), (), {}, {})[:1])
    assert new is not None
    event = assign((), new, {}, {})
    assert event.owner_id is None


def test_rules_must_say_what_they_match() -> None:
    with pytest.raises(InvalidRules) as refused:
        decide_rules(
            DefineAssignmentRules.model_validate({"rules": [{"kind": "territory", "team": ["a"]}]}),
            (),
        )
    assert refused.value.field == "rules.0"
    with pytest.raises(InvalidRules):
        decide_rules(
            DefineAssignmentRules.model_validate(
                {"rules": [{"kind": "round_robin", "team": ["a", "a"]}]}
            ),
            (),
        )
    command = DefineAssignmentRules.model_validate(
        {"rules": [{"kind": "industry", "match": "Retail", "team": ["cai"], "cap": 5}]}
    )
    events = decide_rules(command, ())
    assert fold_rules(events)[0].match == "retail"
    assert decide_rules(command, fold_rules(events)) == []


def captured() -> list[DomainEvent]:
    return capture(None, lead(), RULES, {}, {})


def test_qualifying_and_disqualifying() -> None:
    given = captured()
    (qualified,) = decide(fold(given), QualifyLead(lead_id="l-1", by="u-1"))
    assert isinstance(qualified, LeadQualified)
    state = fold([*given, qualified])
    assert decide(state, QualifyLead(lead_id="l-1", by="u-1")) == []
    (dropped,) = decide(state, DisqualifyLead(lead_id="l-1", by="u-1", reason="no budget"))
    assert isinstance(dropped, LeadDisqualified)
    gone = fold([*given, qualified, dropped])
    with pytest.raises(LeadClosed):
        decide(gone, QualifyLead(lead_id="l-1", by="u-1"))
    with pytest.raises(ValueError):
        DisqualifyLead(lead_id="l-1", by="u-1", reason=" ")
    with pytest.raises(LeadNotFound):
        decide(None, QualifyLead(lead_id="l-9", by="u-1"))


def test_only_a_qualified_lead_converts_once() -> None:
    new = fold(captured())
    assert new is not None
    with pytest.raises(LeadNotQualified):
        convert(new, "c-1", linked_existing=False, deal_id=None)
    qualified = fold([*captured(), LeadQualified(lead_id="l-1", by="u-1")])
    assert qualified is not None
    (event,) = convert(qualified, "c-1", linked_existing=True, deal_id="d-1")
    assert isinstance(event, LeadConverted) and event.linked_existing
    converted = fold([*captured(), LeadQualified(lead_id="l-1", by="u-1"), event])
    assert converted is not None and converted.customer_id == "c-1"
    with pytest.raises(LeadNotQualified):
        convert(converted, "c-2", linked_existing=False, deal_id=None)


def test_an_open_lead_is_handed_over_by_hand_or_back_to_the_queue() -> None:
    state = fold(captured())
    assert state is not None and state.owner_id == "dan"  # by the round robin rule
    (given,) = decide(state, AssignLead(lead_id="l-1", owner_id="zoe"))
    assert isinstance(given, LeadAssigned) and (given.owner_id, given.rule) == ("zoe", "manual")
    handed = fold([*captured(), given])
    assert decide(handed, AssignLead(lead_id="l-1", owner_id="zoe")) == []
    (back,) = decide(handed, AssignLead(lead_id="l-1", owner_id=None))
    assert isinstance(back, LeadAssigned) and back.rule == "queue"
    dropped = fold([*captured(), LeadDisqualified(lead_id="l-1", by="u", reason="spam")])
    with pytest.raises(LeadClosed):
        decide(dropped, AssignLead(lead_id="l-1", owner_id="zoe"))
