"""Leads: captured, assigned, qualified or disqualified, converted into a customer.

Rules:

* A lead captured with an owner is assigned to that owner ("manual"); otherwise the
  tenant's assignment rules decide (``assign``): tried in order, a rule matches every
  lead (round robin) or the lead's territory or industry; its team takes turns,
  skipping owners at the rule's cap of open leads. No rule with room: the queue.
* An open lead may be handed to another owner, or back to the queue, by hand.
* Qualifying a qualified lead, or disqualifying a disqualified one, is no change;
  disqualifying needs a reason; a converted or disqualified lead is not qualified.
* Only a qualified lead converts, once; it becomes (or is linked to) a customer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from libs.events.catalog import DomainEvent
from libs.events.catalog.pipeline import (
    AssignmentRule,
    AssignmentRulesDefined,
    LeadAssigned,
    LeadCaptured,
    LeadConverted,
    LeadDisqualified,
    LeadQualified,
)
from libs.platform.errors import Conflict, Unprocessable
from services.pipeline.commands import (
    AssignLead,
    CaptureLead,
    DefineAssignmentRules,
    DisqualifyLead,
    QualifyLead,
)
from services.pipeline.domain.errors import AggregateNotFound

OPEN = ("new", "qualified")


class LeadNotFound(AggregateNotFound):
    def __init__(self, lead_id: str) -> None:
        super().__init__("lead", lead_id)


class LeadAlreadyCaptured(Conflict):
    def __init__(self, lead_id: str) -> None:
        super().__init__(f"lead {lead_id} exists", existing_id=lead_id)


class LeadClosed(Conflict):
    def __init__(self, lead_id: str, status: str) -> None:
        super().__init__(f"lead {lead_id} is {status}", lead_id=lead_id, lead_status=status)


class LeadNotQualified(Conflict):
    def __init__(self, lead_id: str, status: str) -> None:
        super().__init__(
            f"lead {lead_id} is {status}: only a qualified lead converts",
            lead_id=lead_id,
            lead_status=status,
        )


class InvalidRules(Unprocessable):
    def __init__(self, index: int, reason: str) -> None:
        super().__init__(f"rules.{index}", reason)


@dataclass(frozen=True, slots=True)
class Lead:
    id: str
    name: str
    company: str | None
    email: str | None
    phone: str | None
    source: str
    territory: str | None
    industry: str | None
    owner_id: str | None = None
    assigned_by: str | None = None
    status: str = "new"  # new, qualified, disqualified, converted
    disqualified_reason: str | None = None
    customer_id: str | None = None
    deal_id: str | None = None
    version: int = 1


def evolve(state: Lead | None, event: DomainEvent) -> Lead | None:
    match event:
        case LeadCaptured():
            return Lead(
                id=event.lead_id,
                name=event.name,
                company=event.company,
                email=event.email,
                phone=event.phone,
                source=event.source,
                territory=event.territory,
                industry=event.industry,
                owner_id=event.owner_id,
            )
        case LeadAssigned() if state is not None:
            return replace(
                state, owner_id=event.owner_id, assigned_by=event.rule, version=state.version + 1
            )
        case LeadQualified() if state is not None:
            return replace(state, status="qualified", version=state.version + 1)
        case LeadDisqualified() if state is not None:
            return replace(
                state,
                status="disqualified",
                disqualified_reason=event.reason,
                version=state.version + 1,
            )
        case LeadConverted() if state is not None:
            return replace(
                state,
                status="converted",
                customer_id=event.customer_id,
                deal_id=event.deal_id,
                version=state.version + 1,
            )
    return state if state is None else replace(state, version=state.version + 1)


def fold(events: Iterable[DomainEvent]) -> Lead | None:
    state: Lead | None = None
    for event in events:
        state = evolve(state, event)
    return state


# --- assignment ------------------------------------------------------------------------


def fold_rules(events: Iterable[DomainEvent]) -> tuple[AssignmentRule, ...]:
    rules: tuple[AssignmentRule, ...] = ()
    for event in events:
        if isinstance(event, AssignmentRulesDefined):
            rules = tuple(event.rules)
    return rules


def decide_rules(
    command: DefineAssignmentRules, current: Sequence[AssignmentRule]
) -> list[DomainEvent]:
    rules = [
        AssignmentRule(kind=r.kind, match=r.match, team=list(r.team), cap=r.cap)
        for r in command.rules
    ]
    for i, rule in enumerate(rules):
        if rule.kind == "round_robin" and rule.match is not None:
            raise InvalidRules(i, "a round robin rule matches every lead: no match")
        if rule.kind != "round_robin" and not rule.match:
            raise InvalidRules(i, f"a {rule.kind} rule needs the {rule.kind} it matches")
        if len(set(rule.team)) != len(rule.team):
            raise InvalidRules(i, "an owner is in the team twice")
    if tuple(rules) == tuple(current):
        return []
    return [AssignmentRulesDefined(rules=rules)]


def _matches(rule: AssignmentRule, lead: Lead) -> bool:
    if rule.kind == "territory":
        return lead.territory is not None and lead.territory == rule.match
    if rule.kind == "industry":
        return lead.industry is not None and lead.industry == rule.match
    return True


def assign(
    rules: Sequence[AssignmentRule],
    lead: Lead,
    open_leads: Mapping[str, int],
    last_assigned: Mapping[int, str],
) -> LeadAssigned:
    """Who gets ``lead``: ``open_leads`` counts each owner's open leads, and
    ``last_assigned[i]`` is whom rule ``i`` gave its last lead (turns go on from there)."""
    for i, rule in enumerate(rules):
        if not _matches(rule, lead) or not rule.team:
            continue
        last = last_assigned.get(i)
        start = rule.team.index(last) + 1 if last in rule.team else 0
        for step in range(len(rule.team)):
            owner = rule.team[(start + step) % len(rule.team)]
            if rule.cap is None or open_leads.get(owner, 0) < rule.cap:
                label = rule.kind if rule.kind == "round_robin" else f"{rule.kind}:{rule.match}"
                return LeadAssigned(lead_id=lead.id, owner_id=owner, rule=f"{label}#{i}")
    return LeadAssigned(lead_id=lead.id, owner_id=None, rule="queue")


def rule_index(assigned: LeadAssigned) -> int | None:
    """The rule that made an assignment (None: manual or the queue)."""
    _, hash_sign, index = assigned.rule.rpartition("#")
    return int(index) if hash_sign and index.isdigit() else None


# --- leads -----------------------------------------------------------------------------


def capture(
    state: Lead | None,
    command: CaptureLead,
    rules: Sequence[AssignmentRule],
    open_leads: Mapping[str, int],
    last_assigned: Mapping[int, str],
) -> list[DomainEvent]:
    if state is not None:
        raise LeadAlreadyCaptured(state.id)
    captured = LeadCaptured(
        lead_id=command.lead_id,
        name=command.name,
        company=command.company,
        email=command.email,
        phone=command.phone,
        source=command.source,
        territory=command.territory,
        industry=command.industry,
    )
    lead = evolve(None, captured)
    assert lead is not None
    if command.owner_id is not None:
        assigned = LeadAssigned(lead_id=lead.id, owner_id=command.owner_id, rule="manual")
    else:
        assigned = assign(rules, lead, open_leads, last_assigned)
    return [captured, assigned]


def decide(
    state: Lead | None, command: AssignLead | QualifyLead | DisqualifyLead
) -> list[DomainEvent]:
    lead = existing(state, command.lead_id)
    match command:
        case AssignLead():
            if lead.status not in OPEN:
                raise LeadClosed(lead.id, lead.status)
            if lead.owner_id == command.owner_id:
                return []
            rule = "manual" if command.owner_id is not None else "queue"
            return [LeadAssigned(lead_id=lead.id, owner_id=command.owner_id, rule=rule)]
        case QualifyLead():
            if lead.status == "qualified":
                return []
            if lead.status != "new":
                raise LeadClosed(lead.id, lead.status)
            return [LeadQualified(lead_id=lead.id, by=command.by)]
        case DisqualifyLead():
            if lead.status == "disqualified":
                return []
            if lead.status not in OPEN:
                raise LeadClosed(lead.id, lead.status)
            return [LeadDisqualified(lead_id=lead.id, by=command.by, reason=command.reason)]


def existing(state: Lead | None, lead_id: str) -> Lead:
    if state is None:
        raise LeadNotFound(lead_id)
    return state


def can_convert(lead: Lead) -> None:
    """Raises unless the lead may convert now (checked before asking contacts)."""
    if lead.status != "qualified":
        raise LeadNotQualified(lead.id, lead.status)


def convert(
    lead: Lead, customer_id: str, *, linked_existing: bool, deal_id: str | None
) -> list[DomainEvent]:
    can_convert(lead)
    return [
        LeadConverted(
            lead_id=lead.id,
            customer_id=customer_id,
            linked_existing=linked_existing,
            deal_id=deal_id,
        )
    ]
