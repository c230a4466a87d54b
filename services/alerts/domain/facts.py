"""What the churn rules need to know about a customer: dated facts, one per event.

Each fact keeps the business time it happened at (an order's ``placed_at``, an
interaction's ``occurred_at``), so scoring as of a past day reads only the facts
that had happened by then, exactly as the platform would have seen them on that day.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from statistics import median

from services.alerts.domain.cadence import cadence_of


class FactKind(StrEnum):
    ORDER = "order"
    ORDER_CANCELLED = "order_cancelled"
    REFUND = "refund"
    COMPLAINT = "complaint"
    SLA_BREACH = "sla_breach"
    INTERACTION = "interaction"
    KEY_CONTACT_CHANGED = "key_contact_changed"
    NPS = "nps"
    CSAT = "csat"
    CONTRACT_SIGNED = "contract_signed"
    CONTRACT_RENEWED = "contract_renewed"
    CONTRACT_TERMINATED = "contract_terminated"
    LOYALTY_ACTIVITY = "loyalty_activity"


@dataclass(frozen=True, slots=True)
class Fact:
    """One event as the rules see it. ``ref`` names what it is about (an order, a
    contract, a key contact's role); ``value`` is its figure (an amount, a score);
    ``until`` a date it carries (a contract's end); ``flag`` a yes/no (auto-renewal)."""

    kind: FactKind
    at: datetime
    event_id: str
    ref: str = ""
    value: float = 0.0
    until: date | None = None
    flag: bool = False


@dataclass(frozen=True, slots=True)
class Order:
    order_id: str
    placed_at: datetime
    event_id: str
    total: float = 0.0


@dataclass(frozen=True, slots=True)
class Contract:
    contract_id: str
    ends_on: date
    auto_renew: bool
    event_ids: tuple[str, ...]


@dataclass(slots=True)
class CustomerFacts:
    """A customer's facts as of one time: what had happened by then, in time order."""

    as_of: datetime
    orders: list[Order] = field(default_factory=list)
    dated: dict[FactKind, list[Fact]] = field(default_factory=dict)
    contracts: dict[str, Contract] = field(default_factory=dict)

    def of(self, kind: FactKind) -> list[Fact]:
        return self.dated.get(kind, [])

    @property
    def last_order(self) -> Order | None:
        return self.orders[-1] if self.orders else None

    def cadence_days(self) -> float | None:
        """The customer's own buying rhythm: the median days between orders (None
        for a one-time buyer)."""
        return cadence_days(self.orders)


def cadence_days(orders: Sequence[Order]) -> float | None:
    # Orders within a day of each other are one purchase occasion (a basket split in
    # several orders), not a rhythm of hours.
    return cadence_of([o.placed_at for o in orders])


def as_of(facts: Iterable[Fact], when: datetime) -> CustomerFacts:
    """Fold the facts that had happened by ``when``; later ones do not exist yet."""
    known = sorted((f for f in facts if f.at <= when), key=lambda f: (f.at, f.event_id))
    cancelled = {f.ref for f in known if f.kind is FactKind.ORDER_CANCELLED}
    folded = CustomerFacts(as_of=when)
    for fact in known:
        if fact.kind is FactKind.ORDER:
            # A cancelled order did not happen: it never counted as buying.
            if fact.ref not in cancelled:
                folded.orders.append(Order(fact.ref, fact.at, fact.event_id, fact.value))
        elif fact.kind is FactKind.CONTRACT_SIGNED and fact.until is not None:
            folded.contracts[fact.ref] = Contract(fact.ref, fact.until, fact.flag, (fact.event_id,))
        elif fact.kind in (FactKind.CONTRACT_RENEWED, FactKind.CONTRACT_TERMINATED):
            contract = folded.contracts.get(fact.ref)
            if contract is not None and fact.until is not None:
                folded.contracts[fact.ref] = Contract(
                    fact.ref,
                    fact.until,
                    contract.auto_renew and fact.kind is FactKind.CONTRACT_RENEWED,
                    (*contract.event_ids, fact.event_id),
                )
        if fact.kind is not FactKind.ORDER:
            folded.dated.setdefault(fact.kind, []).append(fact)
    return folded


def typical_repeat_days(customers: Iterable[CustomerFacts]) -> float | None:
    """The tenant's typical repeat interval: the median cadence of its repeat buyers."""
    return typical_repeat_of([o.placed_at for o in c.orders] for c in customers)


def typical_repeat_of(histories: Iterable[Sequence[datetime]]) -> float | None:
    """The same from each customer's order times."""
    cadences = [c for c in (cadence_of(times) for times in histories) if c is not None]
    return median(cadences) if cadences else None
