"""Follow-up task and contract rules, given events, when a command, then events or an error."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from libs.events.catalog.pipeline import (
    ContractRenewed,
    ContractSigned,
    ContractTerminated,
    TaskCompleted,
    TaskCreated,
    TaskRescheduled,
)
from services.pipeline.commands import (
    CompleteTask,
    CreateTask,
    RenewContract,
    RescheduleTask,
    SignContract,
    TerminateContract,
)
from services.pipeline.domain import contracts, tasks

T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def created() -> TaskCreated:
    return TaskCreated(
        task_id="t-1",
        customer_id="c-1",
        title="call back about the quote",
        due_at=T0 + timedelta(days=2),
        assignee_id="u-1",
        created_by="u-2",
    )


def create(**fields: object) -> CreateTask:
    data: dict[str, object] = {
        "task_id": "t-1",
        "customer_id": "c-1",
        "title": "call back",
        "due_at": T0,
        "assignee_id": "u-1",
        "created_by": "u-2",
    }
    return CreateTask.model_validate(data | fields)


def test_a_task_is_about_something() -> None:
    with pytest.raises(ValueError):
        create(customer_id=None)
    (event,) = tasks.decide(None, create(customer_id=None, lead_id="l-1"), T0)
    assert isinstance(event, TaskCreated) and event.lead_id == "l-1"


def test_a_task_due_long_ago_is_a_typo() -> None:
    with pytest.raises(tasks.DueTooEarly) as refused:
        tasks.decide(None, create(due_at=T0 - timedelta(days=2)), T0)
    assert refused.value.field == "due_at"
    assert tasks.decide(None, create(due_at=T0 - timedelta(hours=3)), T0)


def test_rescheduling_moves_the_due_time_once() -> None:
    later = T0 + timedelta(days=5)
    (event,) = tasks.decide(
        tasks.fold([created()]), RescheduleTask(task_id="t-1", due_at=later), T0
    )
    assert isinstance(event, TaskRescheduled) and event.previous_due_at == T0 + timedelta(days=2)
    after = tasks.fold([created(), event])
    assert tasks.decide(after, RescheduleTask(task_id="t-1", due_at=later), T0) == []


def test_a_completed_task_is_completed_once_and_not_rescheduled() -> None:
    (done,) = tasks.decide(tasks.fold([created()]), CompleteTask(task_id="t-1", by="u-1"), T0)
    assert isinstance(done, TaskCompleted)
    after = tasks.fold([created(), done])
    assert after is not None and after.status == "completed"
    assert tasks.decide(after, CompleteTask(task_id="t-1", by="u-1"), T0) == []
    with pytest.raises(tasks.TaskCompletedAlready):
        tasks.decide(after, RescheduleTask(task_id="t-1", due_at=T0), T0)
    with pytest.raises(tasks.TaskNotFound):
        tasks.decide(None, CompleteTask(task_id="t-9", by="u-1"), T0)


def signed() -> ContractSigned:
    return ContractSigned(
        contract_id="k-1",
        customer_id="c-1",
        title="annual supply",
        value=1200000,
        currency="CNY",
        starts_on=date(2026, 1, 1),
        ends_on=date(2026, 12, 31),
        auto_renew=True,
    )


def sign(**fields: object) -> SignContract:
    data: dict[str, object] = {
        "contract_id": "k-1",
        "customer_id": "c-1",
        "title": "supply",
        "value": 1,
        "currency": "CNY",
        "starts_on": "2026-01-01",
        "ends_on": "2026-12-31",
    }
    return SignContract.model_validate(data | fields)


def test_a_term_ends_after_it_starts() -> None:
    with pytest.raises(contracts.TermOutOfOrder) as refused:
        contracts.decide(None, sign(ends_on="2026-01-01"), T0)
    assert refused.value.field == "ends_on"
    (event,) = contracts.decide(None, sign(), T0)
    assert isinstance(event, ContractSigned)


def test_a_renewal_extends_the_term_and_keeps_the_value_unless_told() -> None:
    renew = RenewContract(contract_id="k-1", ends_on=date(2027, 12, 31))
    (event,) = contracts.decide(contracts.fold([signed()]), renew, T0)
    assert isinstance(event, ContractRenewed)
    assert (event.previous_ends_on, event.ends_on, event.value) == (
        date(2026, 12, 31),
        date(2027, 12, 31),
        1200000,
    )
    with pytest.raises(contracts.TermOutOfOrder):
        contracts.decide(
            contracts.fold([signed()]),
            RenewContract(contract_id="k-1", ends_on=date(2026, 6, 1)),
            T0,
        )


def test_a_terminated_contract_is_not_renewed() -> None:
    (ended,) = contracts.decide(
        contracts.fold([signed()]), TerminateContract(contract_id="k-1", reason="moved away"), T0
    )
    assert isinstance(ended, ContractTerminated) and ended.terminated_on == T0.date()
    after = contracts.fold([signed(), ended])
    assert after is not None
    assert after.status(T0.date()) == "active" and after.status(date(2026, 12, 1)) == "terminated"
    with pytest.raises(contracts.ContractTerminatedAlready):
        contracts.decide(after, RenewContract(contract_id="k-1", ends_on=date(2027, 12, 31)), T0)
    assert contracts.decide(after, TerminateContract(contract_id="k-1", reason="again"), T0) == []


def test_termination_falls_within_the_term() -> None:
    with pytest.raises(contracts.TermOutOfOrder) as refused:
        contracts.decide(
            contracts.fold([signed()]),
            TerminateContract(contract_id="k-1", reason="x", terminated_on=date(2027, 2, 1)),
            T0,
        )
    assert refused.value.field == "terminated_on"
