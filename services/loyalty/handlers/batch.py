"""Earning for a run of a batch's events in a few statements instead of a dozen each.

The projection runtime hands the reactions a batch; one ledger command per event
(``execute``) costs about a dozen round trips (savepoint, lock, the ledger, the
rules, the append, the lines, the account). For a run of events that each touch one
ledger (orders, refunds, cancellations, survey answers), this does the same work
once for the run: lock every ledger of the run, read them in one query and the
rules once, decide each command in order on its ledger with the same ``decide``,
append them with one ``append_many`` and record them with one ``record_many``. The
rules are those of ``execute``; only the fetching and the writing are shared.

A referral the run qualifies pays its referrer at once when the referrer's ledger is
one of the run's. A run that meets a ledger merged away, a referrer outside it,
another writer's append or a deadlock is undone (its savepoint) and the caller
applies its events one by one instead.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from libs.events.catalog import DomainEvent
from libs.events.catalog.loyalty import ReferralQualified, catalog
from libs.events.store import (
    EVENT_COLUMNS,
    ConcurrencyConflict,
    NewEvent,
    StreamAppend,
    events,
    recorded_event,
)
from libs.events.write_path import race_of
from services.loyalty import read_model
from services.loyalty.commands import LedgerCommand
from services.loyalty.domain.decisions import decide, next_due, referral_bonus
from services.loyalty.domain.ledger import Ledger, evolve, fold
from services.loyalty.handlers import Cause, Loyalty, load_rules, new_events


@dataclass(frozen=True, slots=True)
class LedgerWork:
    """One event's command on one customer's ledger."""

    tenant_id: str
    customer_id: str
    command: LedgerCommand
    cause: Cause


class RunUndone(Exception):
    """The run cannot be decided together; nothing of it was written."""


Decided = list[tuple[LedgerWork, list[DomainEvent]]]


async def execute_run(
    loyalty: Loyalty, conn: AsyncConnection, run: Sequence[LedgerWork]
) -> Decided | None:
    """Decide and record ``run`` together: what each command decided, or None
    (nothing written) when the caller must apply the run one by one."""
    if len(run) < 2:
        return None  # one command: the ordinary path is as cheap
    try:
        async with conn.begin_nested():
            decided: Decided = []
            for tenant_id in dict.fromkeys(e.tenant_id for e in run):
                decided += await _run_of_tenant(
                    loyalty, conn, tenant_id, [e for e in run if e.tenant_id == tenant_id]
                )
    except RunUndone:
        return None
    except (ConcurrencyConflict, DBAPIError) as exc:
        if race_of(exc) is None:
            raise
        return None
    loyalty.appended(sum(len(new) for _, new in decided))
    return decided


def _lock_order(tenant_id: str, customer_id: str) -> bytes:
    # Any fixed order will do for the run's own locks; the key's hash spreads them.
    return hashlib.blake2b(f"{tenant_id}\x1f{customer_id}".encode(), digest_size=8).digest()


async def _run_of_tenant(
    loyalty: Loyalty, conn: AsyncConnection, tenant_id: str, run: Sequence[LedgerWork]
) -> Decided:
    customers = sorted(
        dict.fromkeys(e.customer_id for e in run), key=lambda c: _lock_order(tenant_id, c)
    )
    await read_model.lock(conn, tenant_id, *customers)
    ledgers = await _load_ledgers(loyalty, conn, tenant_id, customers)
    if any(ledger.merged_into is not None for ledger in ledgers.values()):
        raise RunUndone  # reactions follow merges one event at a time
    rules = await load_rules(loyalty.store, conn, tenant_id)
    now = loyalty.clock()
    # evolve changes the state it is given: keep each ledger as it was for its lines.
    before = {c: copy.deepcopy(ledger) for c, ledger in ledgers.items()}
    decided: dict[str, list[DomainEvent]] = {c: [] for c in customers}
    stamped: dict[str, list[NewEvent]] = {c: [] for c in customers}
    outcomes: Decided = []

    def apply(customer_id: str, command: LedgerCommand, cause: Cause) -> list[DomainEvent]:
        ledger = ledgers[customer_id]
        new = decide(command, ledger, rules, now)
        for event in new:
            ledger = evolve(ledger, event)
        ledgers[customer_id] = ledger
        decided[customer_id] += new
        stamped[customer_id] += new_events(new, customer_id, now, cause)
        return new

    for work in run:
        new = apply(work.customer_id, work.command, work.cause)
        outcomes.append((work, new))
        for qualified in new:
            if isinstance(qualified, ReferralQualified) and qualified.points > 0:
                # Paid at once, as the one-event path pays it: the referrer's later
                # events in the run come after its bonus.
                if qualified.referrer_id not in ledgers:
                    raise RunUndone
                apply(qualified.referrer_id, referral_bonus(qualified), work.cause)
    changed = [c for c in customers if decided[c]]
    if not changed:
        return outcomes
    await loyalty.store.append_many(
        tenant_id,
        [StreamAppend(c, before[c].version, stamped[c]) for c in changed],
        conn=conn,
    )
    await read_model.record_many(
        conn,
        tenant_id,
        [
            read_model.LedgerChange(
                before[c], decided[c], ledgers[c], next_due(ledgers[c], rules, now)
            )
            for c in changed
        ],
        now,
    )
    return outcomes


async def _load_ledgers(
    loyalty: Loyalty, conn: AsyncConnection, tenant_id: str, customers: Sequence[str]
) -> dict[str, Ledger]:
    """Every ledger of the run in one query (``fold`` of each stream, as ``load_ledger``)."""
    found = await conn.execute(
        select(*EVENT_COLUMNS)
        .where(events.c.tenant_id == tenant_id, events.c.stream_id.in_(customers))
        .order_by(events.c.stream_id, events.c.version)
    )
    recorded = await loyalty.store.open_personal_data(conn, [recorded_event(r) for r in found])
    streams: dict[str, list[DomainEvent]] = {c: [] for c in customers}
    for r in recorded:
        streams[r.stream_id].append(catalog.decode(r.type, r.data))
    return {c: fold(c, streams[c]) for c in customers}
