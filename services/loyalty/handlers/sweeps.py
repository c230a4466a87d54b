"""Work the service does by the clock, not on request: expiring due lots and the
yearly birthday bonus. Both are commands on ledgers, so running a sweep twice (two
processes, a restart mid-way) changes nothing the first run did not."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

from services.loyalty import read_model
from services.loyalty.commands import EarnBonus, ExpirePoints
from services.loyalty.domain.rules import RulesBook, is_birthday
from services.loyalty.handlers import Loyalty, execute
from services.loyalty.handlers.programme import current_rules


async def sweep_expiry(loyalty: Loyalty, limit: int = 500) -> int:
    """Expire every lot due now and let tiers fall as orders leave the window (each
    ledger in its own transaction); how many ledgers."""
    async with loyalty.engine.connect() as conn:
        due = await read_model.due_for_sweep(conn, loyalty.clock(), limit)
    for tenant_id, customer_id in due:
        await execute(loyalty, tenant_id, customer_id, ExpirePoints())
    return len(due)


async def award_birthdays(loyalty: Loyalty) -> int:
    """The tenant's birthday bonus to every customer whose birthday it is today in the
    tenant's time zone, once a year (the source is ``birthday:<customer>:<year>``)."""
    now = loyalty.clock()
    # Every time zone's today is one of these three UTC dates.
    days = [(now + timedelta(days=offset)).date() for offset in (-1, 0, 1)]
    async with loyalty.engine.connect() as conn:
        candidates = await read_model.birthdays_around(conn, days)
    books: dict[str, RulesBook] = {}
    awarded = 0
    for tenant_id, customer_id, month, day in candidates:
        if tenant_id not in books:
            books[tenant_id] = await current_rules(loyalty, tenant_id)
        rules = books[tenant_id].at(now)
        today = now.astimezone(ZoneInfo(rules.time_zone)).date()
        if not rules.birthday_bonus or not is_birthday(month, day, today):
            continue
        bonus = EarnBonus(
            f"birthday:{customer_id}:{today.year}",
            "birthday",
            rules.birthday_bonus,
            explanation=f"birthday {today.year}",
        )
        outcome = await execute(loyalty, tenant_id, customer_id, bonus)
        awarded += bool(outcome.events)
    return awarded
