"""The tenant's service policies: SLA policies, business calendars, escalation and
dispatch rules.

Each is a stream of its own (``sla-policy:<name>``, ``business-calendar:<name>``,
``escalation-rules``, ``dispatch-rules``): every PUT is a new version as an event, so a
ticket can name the exact versions that measure it and an old version is never lost.
"""

from __future__ import annotations

from libs.events.catalog.tickets import (
    BusinessCalendarDefined,
    DispatchRule,
    DispatchRulesDefined,
    EscalationRule,
    EscalationRulesDefined,
    Priority,
    SlaPolicyDefined,
    Targets,
    catalog,
)
from libs.events.known_customers import KnownCustomer
from libs.events.write_path import new_events
from libs.platform.errors import NotFound, Unprocessable
from services.tickets.commands import DefineBusinessCalendar, DefineSlaPolicy
from services.tickets.domain.calendar import STANDARD, BusinessCalendar
from services.tickets.domain.sla import TARGETS
from services.tickets.domain.ticket import AppliedSla
from services.tickets.handlers import Tickets

DEFAULT_POLICY = "default"
ESCALATION_RULES = "escalation-rules"
DISPATCH_RULES = "dispatch-rules"


class PolicyNotFound(NotFound):
    def __init__(self, name: str) -> None:
        super().__init__(f"SLA policy {name} not found", policy=name)


class CalendarNotFound(NotFound):
    def __init__(self, name: str) -> None:
        super().__init__(f"business calendar {name} not found", calendar=name)


def policy_stream(name: str) -> str:
    return f"sla-policy:{name}"


def calendar_stream(name: str) -> str:
    return f"business-calendar:{name}"


async def define_business_calendar(
    tickets: Tickets,
    tenant_id: str,
    name: str,
    command: DefineBusinessCalendar,
    expected: int | None = None,
) -> BusinessCalendarDefined:
    if name == STANDARD.name:
        raise Unprocessable("name", "standard is the built-in calendar; choose another name")
    stream = calendar_stream(name)

    async def attempt() -> BusinessCalendarDefined:
        version = await tickets.store.stream_version(tenant_id, stream)
        tickets.check_version(stream, expected, version)
        event = BusinessCalendarDefined(
            calendar=name,
            version=version + 1,
            time_zone=command.time_zone,
            week={day: [h.model_dump() for h in hours] for day, hours in command.week.items()},  # type: ignore[misc]
            holidays=sorted(set(command.holidays)),
            make_up_days=sorted(set(command.make_up_days)),
            make_up_hours_of=command.make_up_hours_of,
        )
        await tickets.store.append(
            tenant_id, stream, version, new_events([event], stream, tickets.clock())
        )
        tickets.appended(1)
        return event

    return await tickets.retrying(stream, expected, attempt)


async def define_sla_policy(
    tickets: Tickets,
    tenant_id: str,
    name: str,
    command: DefineSlaPolicy,
    expected: int | None = None,
) -> SlaPolicyDefined:
    if command.calendar != STANDARD.name:
        try:
            await current_calendar(tickets, tenant_id, command.calendar)
        except CalendarNotFound:
            raise Unprocessable(
                "calendar", f"no business calendar named {command.calendar}"
            ) from None
    stream = policy_stream(name)

    async def attempt() -> SlaPolicyDefined:
        version = await tickets.store.stream_version(tenant_id, stream)
        tickets.check_version(stream, expected, version)
        event = SlaPolicyDefined(
            policy=name,
            version=version + 1,
            calendar=command.calendar,
            targets={p: Targets(**t.model_dump()) for p, t in command.targets.items()},
            by_tag={
                tag: {p: Targets(**t.model_dump()) for p, t in targets.items()}
                for tag, targets in command.by_tag.items()
            },
        )
        await tickets.store.append(
            tenant_id, stream, version, new_events([event], stream, tickets.clock())
        )
        tickets.appended(1)
        return event

    return await tickets.retrying(stream, expected, attempt)


async def current_policy(tickets: Tickets, tenant_id: str, name: str) -> SlaPolicyDefined:
    recorded = await tickets.store.read_stream(tenant_id, policy_stream(name))
    if not recorded:
        raise PolicyNotFound(name)
    event = catalog.decode(recorded[-1].type, recorded[-1].data)
    assert isinstance(event, SlaPolicyDefined)
    return event


async def current_calendar(tickets: Tickets, tenant_id: str, name: str) -> BusinessCalendarDefined:
    recorded = await tickets.store.read_stream(tenant_id, calendar_stream(name))
    if not recorded:
        raise CalendarNotFound(name)
    event = catalog.decode(recorded[-1].type, recorded[-1].data)
    assert isinstance(event, BusinessCalendarDefined)
    return event


async def calendar_at(
    tickets: Tickets, tenant_id: str, name: str, version: int
) -> BusinessCalendar:
    """The calendar exactly as it was at ``version`` (the standard one for version 0)."""
    if version == 0 or name == STANDARD.name:
        return STANDARD
    key = (tenant_id, name, version)
    if key not in tickets.calendars:
        recorded = await tickets.store.read_stream(
            tenant_id, calendar_stream(name), after_version=version - 1
        )
        if not recorded:
            raise CalendarNotFound(name)
        event = catalog.decode(recorded[0].type, recorded[0].data)
        assert isinstance(event, BusinessCalendarDefined)
        tickets.calendars[key] = BusinessCalendar.from_event(event)
    return tickets.calendars[key]


async def applied_sla(
    tickets: Tickets,
    tenant_id: str,
    policy_name: str,
    priority: Priority,
    customer: KnownCustomer | None,
) -> AppliedSla | None:
    """The targets the policy's current version sets for ``priority`` (tag-specific ones
    first); None when the tenant has no such policy and none was asked for by name."""
    try:
        policy = await current_policy(tickets, tenant_id, policy_name)
    except PolicyNotFound:
        if policy_name == DEFAULT_POLICY:
            return None
        raise Unprocessable("sla_policy", f"no SLA policy named {policy_name}") from None
    targets = policy.targets.get(priority, Targets())
    for tag in customer.tags if customer else ():
        if priority in policy.by_tag.get(tag, {}):
            targets = policy.by_tag[tag][priority]
            break
    calendar_version = 0
    if policy.calendar != STANDARD.name:
        calendar_version = (await current_calendar(tickets, tenant_id, policy.calendar)).version
    minutes = {
        target: value
        for target, value in zip(
            TARGETS, (targets.first_response_minutes, targets.resolution_minutes), strict=True
        )
        if value is not None
    }
    return AppliedSla(policy.policy, policy.version, policy.calendar, calendar_version, minutes)


async def define_escalation_rules(
    tickets: Tickets, tenant_id: str, rules: list[EscalationRule], expected: int | None = None
) -> EscalationRulesDefined:
    async def attempt() -> EscalationRulesDefined:
        version = await tickets.store.stream_version(tenant_id, ESCALATION_RULES)
        tickets.check_version(ESCALATION_RULES, expected, version)
        event = EscalationRulesDefined(version=version + 1, rules=rules)
        await tickets.store.append(
            tenant_id,
            ESCALATION_RULES,
            version,
            new_events([event], ESCALATION_RULES, tickets.clock()),
        )
        tickets.appended(1)
        return event

    return await tickets.retrying(ESCALATION_RULES, expected, attempt)


async def escalation_rules(tickets: Tickets, tenant_id: str) -> list[EscalationRule]:
    recorded = await tickets.store.read_stream(tenant_id, ESCALATION_RULES)
    if not recorded:
        return []
    event = catalog.decode(recorded[-1].type, recorded[-1].data)
    assert isinstance(event, EscalationRulesDefined)
    return list(event.rules)


async def define_dispatch_rules(
    tickets: Tickets, tenant_id: str, rules: list[DispatchRule], expected: int | None = None
) -> DispatchRulesDefined:
    async def attempt() -> DispatchRulesDefined:
        version = await tickets.store.stream_version(tenant_id, DISPATCH_RULES)
        tickets.check_version(DISPATCH_RULES, expected, version)
        event = DispatchRulesDefined(version=version + 1, rules=rules)
        await tickets.store.append(
            tenant_id,
            DISPATCH_RULES,
            version,
            new_events([event], DISPATCH_RULES, tickets.clock()),
        )
        tickets.appended(1)
        return event

    return await tickets.retrying(DISPATCH_RULES, expected, attempt)


async def dispatch_rules(tickets: Tickets, tenant_id: str) -> list[DispatchRule]:
    recorded = await tickets.store.read_stream(tenant_id, DISPATCH_RULES)
    if not recorded:
        return []
    event = catalog.decode(recorded[-1].type, recorded[-1].data)
    assert isinstance(event, DispatchRulesDefined)
    return list(event.rules)
