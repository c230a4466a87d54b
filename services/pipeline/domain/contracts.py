"""Contracts: signed for a term, renewed to a later end, terminated early.

Rules: a term ends after it starts; a renewal ends after the current end (the new
term follows on); a terminated contract is neither renewed nor terminated again
(terminating twice is no change); termination falls within the term.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import date, datetime

from libs.events.catalog import DomainEvent
from libs.events.catalog.pipeline import ContractRenewed, ContractSigned, ContractTerminated
from libs.platform.errors import Conflict, Unprocessable
from services.pipeline.commands import RenewContract, SignContract, TerminateContract
from services.pipeline.domain.errors import AggregateNotFound

ContractCommand = SignContract | RenewContract | TerminateContract


class ContractNotFound(AggregateNotFound):
    def __init__(self, contract_id: str) -> None:
        super().__init__("contract", contract_id)


class ContractAlreadySigned(Conflict):
    def __init__(self, contract_id: str) -> None:
        super().__init__(f"contract {contract_id} exists", existing_id=contract_id)


class ContractTerminatedAlready(Conflict):
    def __init__(self, contract_id: str) -> None:
        super().__init__(f"contract {contract_id} is terminated", contract_id=contract_id)


class TermOutOfOrder(Unprocessable):
    pass


@dataclass(frozen=True, slots=True)
class Contract:
    id: str
    customer_id: str
    title: str
    value: int
    currency: str
    starts_on: date
    ends_on: date
    auto_renew: bool
    deal_id: str | None
    terminated_on: date | None = None
    renewals: int = 0
    version: int = 1

    def status(self, today: date) -> str:
        if self.terminated_on is not None and self.terminated_on < today:
            return "terminated"
        if today < self.starts_on:
            return "signed"
        return "expired" if today > self.ends_on else "active"


def evolve(state: Contract | None, event: DomainEvent) -> Contract | None:
    match event:
        case ContractSigned():
            return Contract(
                id=event.contract_id,
                customer_id=event.customer_id,
                title=event.title,
                value=event.value,
                currency=event.currency,
                starts_on=event.starts_on,
                ends_on=event.ends_on,
                auto_renew=event.auto_renew,
                deal_id=event.deal_id,
            )
        case ContractRenewed() if state is not None:
            return replace(
                state,
                ends_on=event.ends_on,
                value=event.value,
                renewals=state.renewals + 1,
                version=state.version + 1,
            )
        case ContractTerminated() if state is not None:
            return replace(
                state,
                terminated_on=event.terminated_on,
                version=state.version + 1,
            )
    return state if state is None else replace(state, version=state.version + 1)


def fold(events: Iterable[DomainEvent]) -> Contract | None:
    state: Contract | None = None
    for event in events:
        state = evolve(state, event)
    return state


def decide(state: Contract | None, command: ContractCommand, now: datetime) -> list[DomainEvent]:
    match command:
        case SignContract():
            if state is not None:
                raise ContractAlreadySigned(state.id)
            if command.ends_on <= command.starts_on:
                raise TermOutOfOrder("ends_on", "must be after starts_on")
            return [
                ContractSigned(
                    contract_id=command.contract_id,
                    customer_id=command.customer_id,
                    title=command.title,
                    value=command.value,
                    currency=command.currency,
                    starts_on=command.starts_on,
                    ends_on=command.ends_on,
                    auto_renew=command.auto_renew,
                    deal_id=command.deal_id,
                )
            ]
        case RenewContract():
            contract = _existing(state, command.contract_id)
            if contract.terminated_on is not None:
                raise ContractTerminatedAlready(contract.id)
            if command.ends_on <= contract.ends_on:
                raise TermOutOfOrder(
                    "ends_on", f"a renewal ends after the current end {contract.ends_on}"
                )
            return [
                ContractRenewed(
                    contract_id=contract.id,
                    customer_id=contract.customer_id,
                    previous_ends_on=contract.ends_on,
                    ends_on=command.ends_on,
                    value=contract.value if command.value is None else command.value,
                    currency=contract.currency,
                )
            ]
        case TerminateContract():
            contract = _existing(state, command.contract_id)
            if contract.terminated_on is not None:
                return []
            last_day = command.terminated_on or now.date()
            if not contract.starts_on <= last_day <= contract.ends_on:
                raise TermOutOfOrder(
                    "terminated_on",
                    f"must fall within the term {contract.starts_on}..{contract.ends_on}",
                )
            return [
                ContractTerminated(
                    contract_id=contract.id,
                    customer_id=contract.customer_id,
                    reason=command.reason,
                    terminated_on=last_day,
                )
            ]


def _existing(state: Contract | None, contract_id: str) -> Contract:
    if state is None:
        raise ContractNotFound(contract_id)
    return state
