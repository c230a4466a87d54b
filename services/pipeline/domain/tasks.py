"""Follow-up tasks: created about a customer, a lead or a deal, rescheduled, completed.

Rules: a task is due no earlier than a day before it is created (a follow-up logged
late is still a follow-up, a due date years back is a typo); a completed task is not
rescheduled; completing twice, or rescheduling to the same time, changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from libs.events.catalog import DomainEvent
from libs.events.catalog.pipeline import TaskCompleted, TaskCreated, TaskRescheduled
from libs.platform.errors import Conflict, Unprocessable
from services.pipeline.commands import CompleteTask, CreateTask, RescheduleTask
from services.pipeline.domain.errors import AggregateNotFound

TaskCommand = CreateTask | RescheduleTask | CompleteTask
BACKDATING = timedelta(days=1)


class TaskNotFound(AggregateNotFound):
    def __init__(self, task_id: str) -> None:
        super().__init__("task", task_id)


class TaskAlreadyCreated(Conflict):
    def __init__(self, task_id: str) -> None:
        super().__init__(f"task {task_id} exists", existing_id=task_id)


class TaskCompletedAlready(Conflict):
    def __init__(self, task_id: str) -> None:
        super().__init__(f"task {task_id} is completed", task_id=task_id)


class DueTooEarly(Unprocessable):
    def __init__(self, due_at: datetime) -> None:
        super().__init__("due_at", f"{due_at.isoformat()} is more than a day in the past")


@dataclass(frozen=True, slots=True)
class Task:
    id: str
    customer_id: str | None
    lead_id: str | None
    deal_id: str | None
    title: str
    due_at: datetime
    assignee_id: str
    completed: bool = False
    version: int = 1

    @property
    def status(self) -> str:
        return "completed" if self.completed else "open"


def evolve(state: Task | None, event: DomainEvent) -> Task | None:
    match event:
        case TaskCreated():
            return Task(
                id=event.task_id,
                customer_id=event.customer_id,
                lead_id=event.lead_id,
                deal_id=event.deal_id,
                title=event.title,
                due_at=event.due_at,
                assignee_id=event.assignee_id,
            )
        case TaskRescheduled() if state is not None:
            return replace(state, due_at=event.due_at, version=state.version + 1)
        case TaskCompleted() if state is not None:
            return replace(state, completed=True, version=state.version + 1)
    return state if state is None else replace(state, version=state.version + 1)


def fold(events: Iterable[DomainEvent]) -> Task | None:
    state: Task | None = None
    for event in events:
        state = evolve(state, event)
    return state


def decide(state: Task | None, command: TaskCommand, now: datetime) -> list[DomainEvent]:
    match command:
        case CreateTask():
            if state is not None:
                raise TaskAlreadyCreated(state.id)
            if command.due_at < now - BACKDATING:
                raise DueTooEarly(command.due_at)
            return [
                TaskCreated(
                    task_id=command.task_id,
                    customer_id=command.customer_id,
                    lead_id=command.lead_id,
                    deal_id=command.deal_id,
                    title=command.title,
                    due_at=command.due_at,
                    assignee_id=command.assignee_id,
                    created_by=command.created_by,
                )
            ]
        case RescheduleTask():
            task = _existing(state, command.task_id)
            if task.completed:
                raise TaskCompletedAlready(task.id)
            if command.due_at < now - BACKDATING:
                raise DueTooEarly(command.due_at)
            if command.due_at == task.due_at:
                return []
            return [
                TaskRescheduled(
                    task_id=task.id,
                    customer_id=task.customer_id,
                    previous_due_at=task.due_at,
                    due_at=command.due_at,
                )
            ]
        case CompleteTask():
            task = _existing(state, command.task_id)
            if task.completed:
                return []
            return [
                TaskCompleted(
                    task_id=task.id,
                    customer_id=task.customer_id,
                    by=command.by,
                    note=command.note,
                )
            ]


def _existing(state: Task | None, task_id: str) -> Task:
    if state is None:
        raise TaskNotFound(task_id)
    return state
