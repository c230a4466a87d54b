"""Setting the tenant's churn rules: an event on its ``#rules`` stream, in force at once."""

from __future__ import annotations

from libs.events.catalog.alerts import ChurnRules, ChurnRulesSet
from libs.events.store import NewEvent
from libs.platform.errors import PreconditionFailed
from services.alerts.domain.rules import check_rules
from services.alerts.handlers.context import Alerts
from services.alerts.read_model import churn_facts

RULES_STREAM = "#rules"


async def set_rules(
    alerts: Alerts, tenant_id: str, rules: ChurnRules, by: str, expected: int | None
) -> tuple[ChurnRules, int]:
    """The tenant's new rules, recorded as an event and in force at once."""
    checked = check_rules(rules)

    async def attempt() -> int:
        now = alerts.clock()
        async with alerts.engine.begin() as conn:
            _, version = await churn_facts.rules_of(conn, tenant_id)
            if expected is not None and expected != version:
                raise PreconditionFailed("the rules were changed meanwhile", version=version)
            event = ChurnRulesSet(rules=checked, by=by)
            new = await alerts.store.append(
                tenant_id,
                RULES_STREAM,
                version,
                [NewEvent.from_domain(event, partition_key="rules", occurred_at=now)],
                conn=conn,
            )
            await churn_facts.save_rules(conn, tenant_id, checked, new, now)
            # The kept ranking follows the new rules at the next sweep.
            await churn_facts.review_everyone(conn, tenant_id)
        return new

    # Two managers saving at once: the later one is decided again on the fresher
    # version (or, with If-Match, told the rules moved on).
    new = await alerts.retrying(RULES_STREAM, expected, attempt)
    alerts.appended(1)
    return checked, new
