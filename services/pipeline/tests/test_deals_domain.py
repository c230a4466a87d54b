"""Deal rules: the tenant's stages, moves, closing as won or lost."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from libs.events.catalog.pipeline import (
    DealLost,
    DealOpened,
    DealStage,
    DealStageChanged,
    DealStagesDefined,
    DealWon,
    QuoteAttached,
)
from services.pipeline.commands import AttachQuote, DefineDealStages, MoveDeal, OpenDeal
from services.pipeline.domain.deals import (
    DEFAULT_STAGES,
    DealAlreadyOpened,
    DealClosed,
    DealNotFound,
    InvalidStages,
    LossNeedsReason,
    NotAnOpenStage,
    UnknownStage,
    decide,
    decide_stages,
    fold,
    fold_stages,
)

T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def opened(stage: str = "initial contact") -> DealOpened:
    return DealOpened(
        deal_id="d-1",
        customer_id="c-1",
        title="500 tins",
        amount=880000,
        currency="CNY",
        stage=stage,
        probability=10,
    )


def open_deal(**fields: object) -> OpenDeal:
    data: dict[str, object] = {
        "deal_id": "d-1",
        "customer_id": "c-1",
        "title": "500 tins",
        "amount": 880000,
        "currency": "CNY",
    }
    return OpenDeal.model_validate(data | fields)


def test_a_deal_opens_in_the_first_open_stage_with_its_probability() -> None:
    (event,) = decide(None, open_deal(), DEFAULT_STAGES, T0)
    assert isinstance(event, DealOpened)
    assert (event.stage, event.probability) == ("initial contact", 10)


def test_a_deal_opens_only_in_an_open_stage_of_the_tenant() -> None:
    with pytest.raises(NotAnOpenStage):
        decide(None, open_deal(stage="won"), DEFAULT_STAGES, T0)
    with pytest.raises(UnknownStage):
        decide(None, open_deal(stage="dreaming"), DEFAULT_STAGES, T0)
    with pytest.raises(DealAlreadyOpened):
        decide(fold([opened()]), open_deal(), DEFAULT_STAGES, T0)


def test_a_move_changes_the_stage_and_its_probability() -> None:
    (event,) = decide(fold([opened()]), MoveDeal(deal_id="d-1", stage="quote"), DEFAULT_STAGES, T0)
    assert isinstance(event, DealStageChanged)
    assert (event.from_stage, event.to_stage, event.probability) == ("initial contact", "quote", 50)


def test_moving_to_the_current_stage_changes_nothing() -> None:
    assert (
        decide(
            fold([opened()]), MoveDeal(deal_id="d-1", stage="initial contact"), DEFAULT_STAGES, T0
        )
        == []
    )


def test_a_move_to_an_unknown_stage_names_the_field() -> None:
    with pytest.raises(UnknownStage) as refused:
        decide(fold([opened()]), MoveDeal(deal_id="d-1", stage="maybe"), DEFAULT_STAGES, T0)
    assert refused.value.field == "stage"


def test_lost_needs_a_reason() -> None:
    with pytest.raises(LossNeedsReason) as refused:
        decide(fold([opened()]), MoveDeal(deal_id="d-1", stage="lost"), DEFAULT_STAGES, T0)
    assert refused.value.field == "reason"
    changed, lost = decide(
        fold([opened()]), MoveDeal(deal_id="d-1", stage="lost", reason="price"), DEFAULT_STAGES, T0
    )
    assert isinstance(changed, DealStageChanged) and isinstance(lost, DealLost)
    assert lost.reason == "price"


def test_winning_closes_the_deal_with_its_amount() -> None:
    events = decide(fold([opened()]), MoveDeal(deal_id="d-1", stage="won"), DEFAULT_STAGES, T0)
    assert isinstance(events[-1], DealWon) and events[-1].amount == 880000
    won = fold([opened(), *events])
    assert won is not None and won.status == "won"
    with pytest.raises(DealClosed):
        decide(won, MoveDeal(deal_id="d-1", stage="quote"), DEFAULT_STAGES, T0)


def test_a_move_of_a_deal_that_does_not_exist_is_not_found() -> None:
    with pytest.raises(DealNotFound):
        decide(None, MoveDeal(deal_id="d-9", stage="quote"), DEFAULT_STAGES, T0)


def stages(*specs: tuple[str, int, str]) -> DefineDealStages:
    return DefineDealStages.model_validate(
        {"stages": [{"name": n, "probability": p, "outcome": o} for n, p, o in specs]}
    )


def test_a_tenant_defines_its_own_stages() -> None:
    command = stages(
        ("线索", 5, "open"), ("报价", 40, "open"), ("成交", 100, "won"), ("丢单", 0, "lost")
    )
    (event,) = decide_stages(command, DEFAULT_STAGES)
    assert isinstance(event, DealStagesDefined)
    tenant = fold_stages([event])
    assert [s.name for s in tenant] == ["线索", "报价", "成交", "丢单"]
    (moved,) = decide(
        fold([opened(stage="线索")]), MoveDeal(deal_id="d-1", stage="报价"), tenant, T0
    )
    assert isinstance(moved, DealStageChanged) and moved.probability == 40
    assert decide_stages(command, tenant) == []


@pytest.mark.parametrize(
    "specs",
    [
        [("a", 10, "open"), ("a", 20, "open"), ("w", 100, "won"), ("l", 0, "lost")],
        [("a", 10, "open"), ("w", 100, "won"), ("w2", 100, "won"), ("l", 0, "lost")],
        [("a", 10, "open"), ("w", 90, "won"), ("l", 0, "lost")],
        [("w", 100, "won"), ("l", 0, "lost"), ("l2", 0, "lost")],
        [("a", 10, "open"), ("b", 10, "open"), ("w", 100, "won")],
    ],
)
def test_stages_that_cannot_close_a_deal_are_refused(specs: list[tuple[str, int, str]]) -> None:
    with pytest.raises(InvalidStages):
        decide_stages(stages(*specs), DEFAULT_STAGES)


def test_default_stages_are_the_usual_funnel() -> None:
    assert [(s.name, s.probability) for s in DEFAULT_STAGES][:4] == [
        ("initial contact", 10),
        ("needs analysis", 20),
        ("quote", 50),
        ("negotiation", 75),
    ]
    assert isinstance(DEFAULT_STAGES[0], DealStage)


def test_a_quote_is_attached_to_an_open_deal_once() -> None:
    command = AttachQuote.model_validate(
        {
            "deal_id": "d-1",
            "quote_id": "q-1",
            "lines": [{"sku": "TEA", "name": "龙井", "quantity": 500, "unit_price": 1800}],
        }
    )
    (event,) = decide(fold([opened()]), command, DEFAULT_STAGES, T0)
    assert isinstance(event, QuoteAttached)
    assert (event.total, event.currency) == (900000, "CNY")
    assert decide(fold([opened(), event]), command, DEFAULT_STAGES, T0) == []
    won = decide(fold([opened()]), MoveDeal(deal_id="d-1", stage="won"), DEFAULT_STAGES, T0)
    with pytest.raises(DealClosed):
        decide(fold([opened(), *won]), command, DEFAULT_STAGES, T0)
