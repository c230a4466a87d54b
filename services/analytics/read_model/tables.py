"""One generation of the analytics projection's tables.

Every row keeps the business time of what it records, so a query as of any time
reads only what had happened by then:

* ``customers``: registration time and, once merged away, the survivor;
* ``orders``: one row per order, its total, placed time (with its month and week,
  for cohorts) and, once cancelled, when;
* ``refunds``: one row per refund, its amount and time;
* ``profile``: one row per change of a customer attribute the segments filter on
  (kind, owner, a tag, a custom field, loyalty tier, churn level, NPS group), at the
  time it changed; the value as of a time is the latest row by then;
* ``surveys``: NPS and CSAT answers; ``tickets``: each ticket's category (for CSAT
  by category); ``interactions``: interactions logged, when they occurred;
* ``contracts``: each signature, renewal and termination, when it was recorded, with
  the end it sets (contract customers are lost when their contracts end unrenewed).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import BigInteger, Column, Date, Index, Integer, MetaData, String, Table

from libs.platform.db import UtcDateTime

NAME = "analytics"
Id = String(64)


class MakeTable(Protocol):
    """Makes one table of the generation: its name, columns and indexes."""

    def __call__(
        self, base: str, *columns: Column[Any], indexes: tuple[tuple[str, ...], ...] = ()
    ) -> Table: ...


@dataclass(frozen=True, slots=True)
class Tables:
    generation: int
    customers: Table
    orders: Table
    refunds: Table
    profile: Table
    surveys: Table
    tickets: Table
    interactions: Table
    contracts: Table

    @classmethod
    def of(
        cls,
        generation: int,
        metadata: MetaData | None = None,
        name: Callable[[str], str] | None = None,
    ) -> Tables:
        metadata = metadata if metadata is not None else MetaData()
        name = name or (lambda base: f"{NAME}_{base}_g{generation}")

        def table(
            base: str, *columns: Column[Any], indexes: tuple[tuple[str, ...], ...] = ()
        ) -> Table:
            made = Table(name(base), metadata, *columns)
            for i, cols in enumerate(indexes):
                Index(f"ix_{name(base)}_{i}", *(made.c[c] for c in cols))
            return made

        # Made in this order, one group of tables at a time.
        customers = _customers(table)
        orders, refunds = _purchases(table)
        profile = _profile(table)
        surveys, tickets, interactions = _service(table)
        return cls(
            generation,
            customers=customers,
            orders=orders,
            refunds=refunds,
            profile=profile,
            surveys=surveys,
            tickets=tickets,
            interactions=interactions,
            contracts=_contracts(table),
        )

    def by_customer(self) -> tuple[Table, ...]:
        """Tables whose rows follow a customer into its survivor when it is merged."""
        return (
            self.orders,
            self.refunds,
            self.profile,
            self.surveys,
            self.tickets,
            self.interactions,
            self.contracts,
        )


def _customers(table: MakeTable) -> Table:
    """Each customer: when registered and, once merged away, into whom."""
    return table(
        "customers",
        Column("tenant_id", Id, primary_key=True),
        Column("customer_id", Id, primary_key=True),
        Column("registered_at", UtcDateTime, nullable=True),
        Column("merged_into", Id, nullable=True),
    )


def _purchases(table: MakeTable) -> tuple[Table, Table]:
    """Orders (with their month and week, for cohorts) and refunds."""
    return (
        table(
            "orders",
            Column("tenant_id", Id, primary_key=True),
            Column("order_id", Id, primary_key=True),
            Column("customer_id", Id, nullable=False),
            Column("placed_at", UtcDateTime, nullable=False),
            Column("month", Date, nullable=False),
            Column("week", Date, nullable=False),
            Column("total", BigInteger, nullable=False),
            Column("cancelled_at", UtcDateTime, nullable=True),
            indexes=(("tenant_id", "customer_id"), ("tenant_id", "placed_at")),
        ),
        table(
            "refunds",
            Column("tenant_id", Id, primary_key=True),
            Column("refund_id", Id, primary_key=True),
            Column("order_id", Id, nullable=False),
            Column("customer_id", Id, nullable=False),
            Column("at", UtcDateTime, nullable=False),
            Column("amount", BigInteger, nullable=False),
            indexes=(("tenant_id", "order_id"), ("tenant_id", "customer_id")),
        ),
    )


def _profile(table: MakeTable) -> Table:
    """Changes of the attributes segments filter on, each at its time."""
    return table(
        "profile",
        Column("tenant_id", Id, primary_key=True),
        Column("event_id", Id, primary_key=True),
        Column("attribute", String(200), primary_key=True),
        Column("customer_id", Id, nullable=False),
        Column("at", UtcDateTime, nullable=False),
        Column("value", String(512), nullable=True),
        indexes=(("tenant_id", "customer_id", "attribute", "at"),),
    )


def _service(table: MakeTable) -> tuple[Table, Table, Table]:
    """NPS and CSAT answers, tickets and interactions."""
    return (
        table(
            "surveys",
            Column("tenant_id", Id, primary_key=True),
            Column("survey_id", Id, primary_key=True),
            Column("kind", String(8), primary_key=True),
            Column("customer_id", Id, nullable=False),
            Column("ticket_id", Id, nullable=True),
            Column("score", Integer, nullable=False),
            Column("at", UtcDateTime, nullable=False),
            indexes=(("tenant_id", "at"),),
        ),
        table(
            "tickets",
            Column("tenant_id", Id, primary_key=True),
            Column("ticket_id", Id, primary_key=True),
            Column("customer_id", Id, nullable=False),
            Column("category", String(32), nullable=False),
            Column("opened_at", UtcDateTime, nullable=False),
        ),
        table(
            "interactions",
            Column("tenant_id", Id, primary_key=True),
            Column("interaction_id", Id, primary_key=True),
            Column("customer_id", Id, nullable=False),
            Column("channel", String(16), nullable=False),
            Column("at", UtcDateTime, nullable=False),
            indexes=(("tenant_id", "at"), ("tenant_id", "customer_id")),
        ),
    )


def _contracts(table: MakeTable) -> Table:
    """Signatures, renewals and terminations, with the end each sets."""
    return table(
        "contracts",
        Column("tenant_id", Id, primary_key=True),
        Column("event_id", Id, primary_key=True),
        Column("contract_id", Id, nullable=False),
        Column("customer_id", Id, nullable=False),
        Column("at", UtcDateTime, nullable=False),
        # Only a signature starts a contract; a renewal or termination moves its end.
        Column("starts_on", Date, nullable=True),
        Column("ends_on", Date, nullable=False),
        indexes=(("tenant_id", "customer_id"),),
    )
