"""The tenant's programme: its rules (one stream, every version kept) and its rewards
(a stream each: terms and stock)."""

from __future__ import annotations

from datetime import datetime

from libs.events.catalog.loyalty import LoyaltyRulesSet, ProgramRules, RewardDefined
from libs.events.store import ConcurrencyConflict
from libs.events.write_path import StaleVersion
from services.loyalty import read_model
from services.loyalty.domain.ledger import Reward
from services.loyalty.domain.rules import RulesBook
from services.loyalty.handlers import (
    RULES_KEY,
    RULES_STREAM,
    Loyalty,
    load_reward,
    load_rules,
    new_events,
    reward_stream,
)


async def set_rules(
    loyalty: Loyalty,
    tenant_id: str,
    rules: ProgramRules,
    by: str,
    *,
    effective_from: datetime | None = None,
    expected: int | None = None,
) -> int:
    now = loyalty.clock()
    async with loyalty.engine.begin() as conn:
        await read_model.lock(conn, tenant_id, RULES_STREAM)
        book = await load_rules(loyalty.store, conn, tenant_id)
        if expected is not None and expected != book.version:
            raise StaleVersion("the rule book", expected, book.version)
        event = LoyaltyRulesSet(rules=rules, effective_from=effective_from or now, by=by)
        try:
            version = await loyalty.store.append(
                tenant_id,
                RULES_STREAM,
                book.version,
                new_events([event], RULES_KEY, now),
                conn=conn,
            )
        except ConcurrencyConflict:
            raise StaleVersion("the rule book", book.version) from None
    loyalty.appended(1)
    return version


async def current_rules(loyalty: Loyalty, tenant_id: str) -> RulesBook:
    async with loyalty.engine.connect() as conn:
        return await load_rules(loyalty.store, conn, tenant_id)


async def define_reward(
    loyalty: Loyalty, tenant_id: str, definition: RewardDefined, *, expected: int | None = None
) -> tuple[int, bool]:
    """Create or replace a reward's terms; (version, created)."""
    now = loyalty.clock()
    stream = reward_stream(definition.reward_id)
    async with loyalty.engine.begin() as conn:
        await read_model.lock(conn, tenant_id, stream)
        reward = await load_reward(loyalty.store, conn, tenant_id, definition.reward_id)
        if expected is not None and expected != reward.version:
            raise StaleVersion(
                f"reward {definition.reward_id}", expected, reward.version
            )
        version = await loyalty.store.append(
            tenant_id,
            stream,
            reward.version,
            new_events([definition], definition.reward_id, now),
            conn=conn,
        )
    loyalty.appended(1)
    return version, reward.version == 0


async def reward_of(loyalty: Loyalty, tenant_id: str, reward_id: str) -> Reward:
    async with loyalty.engine.connect() as conn:
        return await load_reward(loyalty.store, conn, tenant_id, reward_id)
