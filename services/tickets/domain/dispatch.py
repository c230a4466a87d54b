"""Auto-dispatch: which group, and which agent in it, a new ticket goes to.

The first rule that matches (category, channel, customer tag; an unset condition
matches anything) names the group; within it the agent with the fewest open tickets
(ties: the order the rule lists them) or the next in turn after the last one given a
ticket. Two tickets opened at the same instant may both go to the same agent: the
workload evens out on the next one, which is cheaper than serialising all openings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from libs.events.catalog.tickets import DispatchRule, TicketAssigned, TicketOpened


def matching_rule(
    rules: Sequence[DispatchRule], opened: TicketOpened, customer_tags: Sequence[str]
) -> DispatchRule | None:
    for rule in rules:
        if rule.category is not None and rule.category != opened.category:
            continue
        if rule.channel is not None and rule.channel != opened.channel:
            continue
        if rule.customer_tag is not None and rule.customer_tag not in customer_tags:
            continue
        return rule
    return None


def dispatch(
    rule: DispatchRule,
    opened: TicketOpened,
    *,
    workload: Mapping[str, int],
    last_assigned: str | None,
) -> TicketAssigned:
    agent = None
    if rule.agents and rule.strategy == "fewest_open":
        agent = min(rule.agents, key=lambda a: (workload.get(a, 0), rule.agents.index(a)))
    elif rule.agents:
        after = rule.agents.index(last_assigned) + 1 if last_assigned in rule.agents else 0
        agent = rule.agents[after % len(rule.agents)]
    return TicketAssigned(
        ticket_id=opened.ticket_id,
        customer_id=opened.customer_id,
        assignee_id=agent,
        group=rule.group,
        by="dispatch",
        rule=rule.name,
    )
