"""Telling readers that a batch is committed, so that ``?min_version`` reads wait
instead of polling (decision 4, "Cost per event").

On PostgreSQL the writer sends ``NOTIFY customer360_applied`` with the customers
of the batch; PostgreSQL delivers it at commit, to every process listening, so
replicas hear it too. A waiting read re-reads its customer's version only when
its customer is named (or every customer, for a payload too long to list), and
at least every ``safety_seconds`` in case a notification was missed. Where no one
listens (SQLite, or while the listening connection is down), reads poll as before.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

log = logging.getLogger(__name__)

CHANNEL = "customer360_applied"
# PostgreSQL refuses payloads of 8000 bytes or more: a longer list wakes everyone.
MAX_PAYLOAD = 7900
EVERYONE = "*"
RECONNECT_SECONDS = 1.0

Customer = tuple[str, str]  # (tenant_id, customer_id)


def payload_of(customers: Iterable[Customer]) -> str:
    """The customers of a batch, one ``tenant<TAB>customer`` a line (ids hold neither)."""
    text = "\n".join(sorted({f"{tenant}\t{customer}" for tenant, customer in customers}))
    return text if len(text.encode()) < MAX_PAYLOAD else EVERYONE


async def announce(conn: AsyncConnection, customers: Iterable[Customer]) -> None:
    """Inside the batch's transaction: delivered when (and only if) it commits."""
    await conn.execute(select(func.pg_notify(CHANNEL, payload_of(customers))))


class AppliedSignal:
    """Waiting reads, by customer, woken when a batch that names them is committed."""

    def __init__(self) -> None:
        self.listening = False
        self._waiting: dict[Customer, set[asyncio.Event]] = {}

    def register(self, customer: Customer) -> asyncio.Event:
        event = asyncio.Event()
        self._waiting.setdefault(customer, set()).add(event)
        return event

    def unregister(self, customer: Customer, event: asyncio.Event) -> None:
        events = self._waiting.get(customer)
        if events is not None:
            events.discard(event)
            if not events:
                del self._waiting[customer]

    def heard(self, payload: str) -> None:
        if payload == EVERYONE:
            self.wake_all()
            return
        for line in payload.splitlines():
            tenant, _, customer = line.partition("\t")
            for event in self._waiting.get((tenant, customer), ()):
                event.set()

    def wake_all(self) -> None:
        for events in self._waiting.values():
            for event in events:
                event.set()


async def listen(engine: AsyncEngine, signal: AppliedSignal, stop: asyncio.Event) -> None:
    """Keep one connection listening until ``stop``; reconnect when it is lost."""

    def on_notify(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
        signal.heard(payload)

    while not stop.is_set():
        try:
            async with engine.connect() as conn:
                raw = (await conn.get_raw_connection()).driver_connection
                assert raw is not None
                await raw.add_listener(CHANNEL, on_notify)
                signal.listening = True
                # Wake everyone once: what committed while no one listened is read now.
                signal.wake_all()
                while not stop.is_set() and not raw.is_closed():
                    try:
                        await asyncio.wait_for(stop.wait(), timeout=RECONNECT_SECONDS)
                    except TimeoutError:
                        pass
                if not raw.is_closed():
                    await raw.remove_listener(CHANNEL, on_notify)
        except Exception as exc:
            log.warning("customer360: not listening for applied batches: %s", exc)
        finally:
            signal.listening = False
        if not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=RECONNECT_SECONDS)
            except TimeoutError:
                pass
