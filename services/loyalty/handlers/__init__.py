"""The loyalty handlers: lock, load, decide, append, in one transaction each.

Every command on a customer's ledger, whether an HTTP caller's or a reaction to
another service's event, follows one path: take the ledger's lock (PostgreSQL),
fold its stream, decide with the injected clock, append with the version read,
update the query tables and enqueue the outbox, all or nothing. The lock makes
concurrent writers of one ledger take turns; the version check is still what
guarantees a decision was made on the state it is appended after.

Streams: one per customer (its ledger; the stream id is the customer id), one for
the tenant's rules and one per reward (ids no customer id can take: ``#rules``,
``#reward/<id>``).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from sqlalchemy.ext.asyncio import AsyncConnection

from libs.events import write_path
from libs.events.catalog import DomainEvent
from libs.events.catalog.loyalty import (
    LedgerTransferredOut,
    LoyaltyRulesSet,
    PointsRedeemed,
    RedemptionCancelled,
    RewardStockReturned,
    RewardStockTaken,
    catalog,
)
from libs.events.store import EventStore, NewEvent, StreamAppend
from libs.events.write_path import HandlerContext, Subject
from services.loyalty import read_model
from services.loyalty.commands import (
    CancelRedemption,
    LedgerCommand,
    RedeemReward,
    TransferLedgerOut,
)
from services.loyalty.domain.decisions import decide, next_due, transfer_in
from services.loyalty.domain.ledger import Ledger, Reward, evolve, fold, fold_reward
from services.loyalty.domain.rules import RulesBook

log = logging.getLogger(__name__)

SERVICE = "loyalty"
RULES_STREAM = "#rules"
RULES_KEY = "rules"
# A merged customer's survivor may itself have been merged since: follow a few hops.
MAX_MERGE_HOPS = 5


def reward_stream(reward_id: str) -> str:
    return f"#reward/{reward_id}"


@dataclass
class Loyalty(HandlerContext):
    """What the handlers need, wired once by ``app.create_app`` (tests wire their own)."""

    service: ClassVar[str] = SERVICE

    def subject(self, stream_id: str) -> Subject:
        return Subject(f"the ledger of {stream_id}", {"customer_id": stream_id})


@dataclass(frozen=True, slots=True)
class Cause:
    """The event a reaction answers: stamped on what it appends."""

    event_id: str
    correlation_id: str | None


@dataclass(frozen=True, slots=True)
class Outcome:
    customer_id: str
    ledger: Ledger
    events: list[DomainEvent]


def new_events(
    events: Sequence[DomainEvent], partition_key: str, now: datetime, cause: Cause | None = None
) -> list[NewEvent]:
    if cause is None:
        return write_path.new_events(events, partition_key, now)
    return write_path.new_events(
        events,
        partition_key,
        now,
        caused_by=cause.event_id,
        correlation_id=cause.correlation_id,
    )


async def load_ledger(
    store: EventStore, conn: AsyncConnection, tenant_id: str, customer_id: str
) -> Ledger:
    recorded = await store.read_stream(tenant_id, customer_id, conn=conn)
    return fold(customer_id, (catalog.decode(e.type, e.data) for e in recorded))


async def load_rules(store: EventStore, conn: AsyncConnection, tenant_id: str) -> RulesBook:
    recorded = await store.read_stream(tenant_id, RULES_STREAM, conn=conn)
    decoded = [catalog.decode(e.type, e.data) for e in recorded]
    return RulesBook.of([e for e in decoded if isinstance(e, LoyaltyRulesSet)], len(recorded))


async def load_reward(
    store: EventStore, conn: AsyncConnection, tenant_id: str, reward_id: str
) -> Reward:
    recorded = await store.read_stream(tenant_id, reward_stream(reward_id), conn=conn)
    return fold_reward(catalog.decode(e.type, e.data) for e in recorded)


async def in_transaction(
    loyalty: Loyalty,
    conn: AsyncConnection | None,
    customer_id: str,
    work: Callable[[AsyncConnection], Awaitable[Outcome]],
) -> Outcome:
    """Run ``work`` in its own transaction, or in a savepoint of the caller's (a
    consumer's batch), again when another writer got in first."""

    async def attempt() -> Outcome:
        if conn is None:
            async with loyalty.engine.begin() as own:
                return await work(own)
        async with conn.begin_nested():
            return await work(conn)

    # A ledger command carries no If-Match: a lost race is always decided again.
    outcome = await loyalty.retrying(customer_id, None, attempt)
    loyalty.appended(len(outcome.events))
    return outcome


async def execute(
    loyalty: Loyalty,
    tenant_id: str,
    customer_id: str,
    command: LedgerCommand,
    *,
    conn: AsyncConnection | None = None,
    cause: Cause | None = None,
    follow_merge: bool = False,
) -> Outcome:
    """Decide ``command`` on the customer's ledger and append what it decided.

    ``follow_merge``: a reaction to another service's event about a customer since
    merged applies to the survivor (an HTTP caller is told the survivor instead).
    """

    async def work(conn: AsyncConnection) -> Outcome:
        store = loyalty.store
        target = customer_id
        await read_model.lock(conn, tenant_id, target)
        ledger = await load_ledger(store, conn, tenant_id, target)
        hops = 0
        while follow_merge and ledger.merged_into is not None and hops < MAX_MERGE_HOPS:
            target, hops = ledger.merged_into, hops + 1
            await read_model.lock(conn, tenant_id, target)
            ledger = await load_ledger(store, conn, tenant_id, target)
        rules = await load_rules(store, conn, tenant_id)
        reward: Reward | None = None
        reward_id = _reward_of(command, ledger)
        if reward_id is not None:
            await read_model.lock(conn, tenant_id, reward_stream(reward_id))
            reward = await load_reward(store, conn, tenant_id, reward_id)
        now = loyalty.clock()
        events = decide(command, ledger, rules, now, reward=reward)
        if not events:
            return Outcome(target, ledger, [])
        appends = [StreamAppend(target, ledger.version, new_events(events, target, now, cause))]
        stock = _stock_events(events)
        if stock and reward is not None and reward_id is not None:
            appends.append(
                StreamAppend(
                    reward_stream(reward_id), reward.version, new_events(stock, target, now, cause)
                )
            )
        await store.append_many(tenant_id, appends, conn=conn)
        # evolve changes the state it is given: the lines are recorded after ``ledger``.
        after = copy.deepcopy(ledger)
        for event in events:
            after = evolve(after, event)
        await read_model.record(
            conn, tenant_id, ledger, events, after, now, next_due(after, rules, now)
        )
        return Outcome(target, after, events)

    # The decision folds the ledger it was given; give each attempt a fresh one.
    return await in_transaction(loyalty, conn, customer_id, work)


def _reward_of(command: LedgerCommand, ledger: Ledger) -> str | None:
    if isinstance(command, RedeemReward):
        return command.reward_id
    if isinstance(command, CancelRedemption):
        redemption = ledger.redemptions.get(command.redemption_id)
        return redemption.reward_id if redemption is not None else None
    return None


def _stock_events(events: Sequence[DomainEvent]) -> list[DomainEvent]:
    stock: list[DomainEvent] = []
    for event in events:
        if isinstance(event, PointsRedeemed):
            stock.append(
                RewardStockTaken(
                    reward_id=event.reward_id,
                    redemption_id=event.redemption_id,
                    customer_id=event.customer_id,
                )
            )
        elif isinstance(event, RedemptionCancelled):
            stock.append(
                RewardStockReturned(
                    reward_id=event.reward_id,
                    redemption_id=event.redemption_id,
                    customer_id=event.customer_id,
                )
            )
    return stock


async def transfer_ledger(
    loyalty: Loyalty,
    tenant_id: str,
    duplicate_id: str,
    survivor_id: str,
    *,
    conn: AsyncConnection | None = None,
    cause: Cause,
) -> Outcome:
    """A merge in contacts: the duplicate's balance, lots and orders move to the survivor."""

    async def work(conn: AsyncConnection) -> Outcome:
        store = loyalty.store
        await read_model.lock(conn, tenant_id, *sorted({duplicate_id, survivor_id}))
        duplicate = await load_ledger(store, conn, tenant_id, duplicate_id)
        survivor = await load_ledger(store, conn, tenant_id, survivor_id)
        rules = await load_rules(store, conn, tenant_id)
        now = loyalty.clock()
        out = decide(TransferLedgerOut(cause.event_id, survivor_id), duplicate, rules, now)
        moved = [e for e in out if isinstance(e, LedgerTransferredOut)]
        if not moved or duplicate_id == survivor_id:
            return Outcome(survivor_id, survivor, [])
        into = transfer_in(duplicate, survivor, moved[0], rules, now)
        await store.append_many(
            tenant_id,
            [
                StreamAppend(
                    duplicate_id, duplicate.version, new_events(out, duplicate_id, now, cause)
                ),
                StreamAppend(
                    survivor_id, survivor.version, new_events(into, survivor_id, now, cause)
                ),
            ],
            conn=conn,
        )
        dup_after, surv_after = copy.deepcopy(duplicate), copy.deepcopy(survivor)
        for event in out:
            dup_after = evolve(dup_after, event)
        for event in into:
            surv_after = evolve(surv_after, event)
        await read_model.record(
            conn, tenant_id, duplicate, out, dup_after, now, next_due(dup_after, rules, now)
        )
        await read_model.record(
            conn, tenant_id, survivor, into, surv_after, now, next_due(surv_after, rules, now)
        )
        return Outcome(survivor_id, surv_after, [*out, *into])

    return await in_transaction(loyalty, conn, survivor_id, work)


async def ledger_as_of(
    loyalty: Loyalty, tenant_id: str, customer_id: str, as_of: datetime | None
) -> tuple[Ledger, RulesBook, bool]:
    """The ledger as it stood at ``as_of`` (now: all of it), the rules, and whether the
    customer is known here at all (registered in contacts, or with a ledger)."""
    async with loyalty.engine.connect() as conn:
        recorded = await loyalty.store.read_stream(tenant_id, customer_id, conn=conn)
        if as_of is not None:
            recorded = [e for e in recorded if e.occurred_at <= as_of]
        ledger = fold(customer_id, (catalog.decode(e.type, e.data) for e in recorded))
        rules = await load_rules(loyalty.store, conn, tenant_id)
        known = bool(recorded) or await read_model.is_member(conn, tenant_id, customer_id)
    return ledger, rules, known


async def is_known(loyalty: Loyalty, tenant_id: str, customer_id: str) -> bool:
    async with loyalty.engine.connect() as conn:
        if await read_model.is_member(conn, tenant_id, customer_id):
            return True
    # After the first connection is given back: on SQLite it holds the write lock, and
    # a second connection opened inside it waited for that lock (30 s, then a 500).
    return await loyalty.store.stream_version(tenant_id, customer_id) > 0
