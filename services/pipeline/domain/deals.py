"""Deals and the tenant's stages: a deal moves through the stages until won or lost.

Rules:

* Each tenant has its own stages in pipeline order, each with a win probability;
  until it defines them, the defaults below. There is exactly one won stage
  (probability 100) and one lost stage (probability 0), and at least one open one.
* A deal opens in an open stage (the first, unless told) for a known customer.
* Moving to the stage it is in changes nothing; to a stage the tenant does not
  have is a 422; into the lost stage needs a reason. Reaching the won or lost
  stage closes the deal (``DealWon`` / ``DealLost`` follow the stage change);
  a closed deal does not move again.
* A quote is attached to an open deal, in the deal's currency; a retried quote
  (same id) is attached once.
* Redefining stages never rewrites a deal: one in a stage that no longer exists
  stays there until it is moved.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime

from libs.events.catalog import DomainEvent
from libs.events.catalog.pipeline import (
    DealLost,
    DealOpened,
    DealStage,
    DealStageChanged,
    DealStagesDefined,
    DealWon,
    Line,
    QuoteAttached,
)
from libs.platform.errors import Conflict, Unprocessable
from services.pipeline.commands import AttachQuote, DefineDealStages, MoveDeal, OpenDeal
from services.pipeline.domain.errors import AggregateNotFound

DEFAULT_STAGES: tuple[DealStage, ...] = (
    DealStage(name="initial contact", probability=10),
    DealStage(name="needs analysis", probability=20),
    DealStage(name="quote", probability=50),
    DealStage(name="negotiation", probability=75),
    DealStage(name="won", probability=100, outcome="won"),
    DealStage(name="lost", probability=0, outcome="lost"),
)


class DealNotFound(AggregateNotFound):
    def __init__(self, deal_id: str) -> None:
        super().__init__("deal", deal_id)


class DealAlreadyOpened(Conflict):
    def __init__(self, deal_id: str) -> None:
        super().__init__(f"deal {deal_id} is already open", existing_id=deal_id)


class DealClosed(Conflict):
    def __init__(self, deal_id: str, status: str) -> None:
        super().__init__(f"deal {deal_id} is {status}: it moves no more", deal_id=deal_id)


class UnknownStage(Unprocessable):
    def __init__(self, stage: str, stages: Sequence[DealStage]) -> None:
        names = ", ".join(s.name for s in stages)
        super().__init__("stage", f"{stage!r} is not a stage of this tenant ({names})")


class NotAnOpenStage(Unprocessable):
    def __init__(self, stage: str) -> None:
        super().__init__("stage", f"a deal opens in an open stage, not {stage!r}")


class LossNeedsReason(Unprocessable):
    def __init__(self) -> None:
        super().__init__("reason", "a lost deal needs the reason it was lost")


class InvalidStages(Unprocessable):
    def __init__(self, reason: str) -> None:
        super().__init__("stages", reason)


@dataclass(frozen=True, slots=True)
class Deal:
    id: str
    customer_id: str
    title: str
    amount: int
    currency: str
    expected_close_on: date | None
    owner_id: str | None
    stage: str
    probability: int
    status: str = "open"  # open, won or lost
    lost_reason: str | None = None
    quotes: tuple[QuoteAttached, ...] = ()
    version: int = 1


# --- stages ----------------------------------------------------------------------------


def fold_stages(events: Iterable[DomainEvent]) -> tuple[DealStage, ...]:
    stages = DEFAULT_STAGES
    for event in events:
        if isinstance(event, DealStagesDefined):
            stages = tuple(event.stages)
    return stages


def decide_stages(command: DefineDealStages, current: Sequence[DealStage]) -> list[DomainEvent]:
    stages = [
        DealStage(name=s.name, probability=s.probability, outcome=s.outcome) for s in command.stages
    ]
    names = [s.name for s in stages]
    if len(set(names)) != len(names):
        raise InvalidStages("stage names must be unique")
    for outcome, probability in (("won", 100), ("lost", 0)):
        closing = [s for s in stages if s.outcome == outcome]
        if len(closing) != 1:
            raise InvalidStages(f"there must be exactly one {outcome} stage")
        if closing[0].probability != probability:
            raise InvalidStages(f"the {outcome} stage's probability is {probability}")
    if not any(s.outcome == "open" for s in stages):
        raise InvalidStages("there must be at least one open stage")
    if tuple(stages) == tuple(current):
        return []
    return [DealStagesDefined(stages=stages)]


def _stage(stages: Sequence[DealStage], name: str) -> DealStage:
    for stage in stages:
        if stage.name == name:
            return stage
    raise UnknownStage(name, stages)


# --- deals -----------------------------------------------------------------------------


def evolve(state: Deal | None, event: DomainEvent) -> Deal | None:
    match event:
        case DealOpened():
            return Deal(
                id=event.deal_id,
                customer_id=event.customer_id,
                title=event.title,
                amount=event.amount,
                currency=event.currency,
                expected_close_on=event.expected_close_on,
                owner_id=event.owner_id,
                stage=event.stage,
                probability=event.probability,
            )
        case DealStageChanged() if state is not None:
            return replace(
                state,
                stage=event.to_stage,
                probability=event.probability,
                version=state.version + 1,
            )
        case QuoteAttached() if state is not None:
            return replace(state, quotes=(*state.quotes, event), version=state.version + 1)
        case DealWon() if state is not None:
            return replace(state, status="won", version=state.version + 1)
        case DealLost() if state is not None:
            return replace(
                state, status="lost", lost_reason=event.reason, version=state.version + 1
            )
    return state if state is None else replace(state, version=state.version + 1)


def fold(events: Iterable[DomainEvent]) -> Deal | None:
    state: Deal | None = None
    for event in events:
        state = evolve(state, event)
    return state


def decide(
    state: Deal | None,
    command: OpenDeal | MoveDeal | AttachQuote,
    stages: Sequence[DealStage],
    now: datetime,
) -> list[DomainEvent]:
    match command:
        case OpenDeal():
            return _open(state, command, stages)
        case MoveDeal():
            if state is None:
                raise DealNotFound(command.deal_id)
            return _move(state, command, stages)
        case AttachQuote():
            if state is None:
                raise DealNotFound(command.deal_id)
            return _quote(state, command)


def _open(state: Deal | None, command: OpenDeal, stages: Sequence[DealStage]) -> list[DomainEvent]:
    if state is not None:
        raise DealAlreadyOpened(state.id)
    if command.stage is None:
        stage = next(s for s in stages if s.outcome == "open")
    else:
        stage = _stage(stages, command.stage)
        if stage.outcome != "open":
            raise NotAnOpenStage(stage.name)
    return [
        DealOpened(
            deal_id=command.deal_id,
            customer_id=command.customer_id,
            title=command.title,
            amount=command.amount,
            currency=command.currency,
            expected_close_on=command.expected_close_on,
            owner_id=command.owner_id,
            stage=stage.name,
            probability=stage.probability,
            lead_id=command.lead_id,
        )
    ]


def _move(deal: Deal, command: MoveDeal, stages: Sequence[DealStage]) -> list[DomainEvent]:
    if deal.status != "open":
        raise DealClosed(deal.id, deal.status)
    target = _stage(stages, command.stage)
    if target.name == deal.stage:
        return []
    if target.outcome == "lost" and not command.reason:
        raise LossNeedsReason()
    events: list[DomainEvent] = [
        DealStageChanged(
            deal_id=deal.id,
            customer_id=deal.customer_id,
            from_stage=deal.stage,
            to_stage=target.name,
            probability=target.probability,
        )
    ]
    if target.outcome == "won":
        events.append(
            DealWon(
                deal_id=deal.id,
                customer_id=deal.customer_id,
                amount=deal.amount,
                currency=deal.currency,
            )
        )
    elif target.outcome == "lost":
        events.append(
            DealLost(deal_id=deal.id, customer_id=deal.customer_id, reason=command.reason)
        )
    return events


def _quote(deal: Deal, command: AttachQuote) -> list[DomainEvent]:
    if any(q.quote_id == command.quote_id for q in deal.quotes):
        return []  # a retried request
    if deal.status != "open":
        raise DealClosed(deal.id, deal.status)
    lines = [
        Line(
            line_no=i,
            sku=line.sku,
            name=line.name,
            quantity=line.quantity,
            unit_price=line.unit_price,
        )
        for i, line in enumerate(command.lines, start=1)
    ]
    total = sum(line.quantity * line.unit_price for line in lines)
    return [
        QuoteAttached(
            deal_id=deal.id,
            customer_id=deal.customer_id,
            quote_id=command.quote_id,
            currency=deal.currency,
            lines=lines,
            total=total if command.total is None else command.total,
            valid_until=command.valid_until,
        )
    ]
