"""Reminders a rep should act on: a contract's end coming near without renewal, an owned
customer gone quiet, a follow-up task past its due time. Each has an id derived from
what it is about, so it fires once: once per contract end date, once per silence (a
new interaction starts a new one), once per task and due time (a rescheduled task
that falls overdue again is reminded again), once per customer and birthday year.

A birthday is personal data: only its month and day are known here, and the reminder
names neither (its ``due_on`` is the day it fired; decision 0057)."""

from __future__ import annotations

import calendar
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from libs.events.catalog.alerts import ChurnRules, ReminderDue
from services.alerts.domain.facts import CustomerFacts, FactKind

_REMINDERS = uuid.UUID("0c7d6a2b-3f55-4c1e-8d7a-91b2e4f6a0d3")


@dataclass(frozen=True, slots=True)
class FollowedTask:
    """An open follow-up task of the pipeline's, about the customer."""

    task_id: str
    assignee_id: str
    due_at: datetime


@dataclass(frozen=True, slots=True)
class Birthday:
    """A customer's birthday as far as reminders need it: month and day, no year."""

    month: int
    day: int


def next_birthday(birthday: Birthday, today: date) -> date:
    """The birthday's next occurrence on or after ``today``; born on 29 February: the
    28th in years without one."""
    for year in (today.year, today.year + 1):
        day = birthday.day
        if (birthday.month, day) == (2, 29) and not calendar.isleap(year):
            day = 28
        occurrence = date(year, birthday.month, day)
        if occurrence >= today:
            return occurrence
    raise AssertionError("a birthday recurs within a year")  # pragma: no cover


def _id(tenant_id: str, *parts: str) -> str:
    return str(uuid.uuid5(_REMINDERS, "/".join((tenant_id, *parts))))


def due_reminders(
    tenant_id: str,
    customer_id: str,
    folded: CustomerFacts,
    owner_id: str | None,
    registered_at: datetime | None,
    rules: ChurnRules,
    tasks: Iterable[FollowedTask] = (),
    birthday: Birthday | None = None,
) -> list[ReminderDue]:
    """The customer's reminders due as of ``folded.as_of``, by kind: overdue follow-up
    tasks, contracts ending soon, a customer gone quiet, a birthday coming."""
    found = _overdue_tasks(tenant_id, customer_id, folded, tasks)
    if rules.contract_renewal_days is not None:
        found += _contract_renewals(
            tenant_id, customer_id, folded, owner_id, rules.contract_renewal_days
        )
    if rules.no_interaction_days is not None and owner_id is not None:
        found += _gone_quiet(
            tenant_id, customer_id, folded, owner_id, registered_at, rules.no_interaction_days
        )
    if rules.birthday_days is not None and birthday is not None and owner_id is not None:
        found += _birthday_coming(
            tenant_id, customer_id, folded, owner_id, rules.time_zone, rules.birthday_days, birthday
        )
    return found


def _overdue_tasks(
    tenant_id: str, customer_id: str, folded: CustomerFacts, tasks: Iterable[FollowedTask]
) -> list[ReminderDue]:
    found = []
    for task in sorted(tasks, key=lambda t: (t.due_at, t.task_id)):
        if task.due_at >= folded.as_of:
            continue
        due = task.due_at.astimezone(UTC).isoformat()
        found.append(
            ReminderDue(
                reminder_id=_id(tenant_id, "task", task.task_id, due),
                kind="task_overdue",
                customer_id=customer_id,
                assignee_id=task.assignee_id,
                due_on=task.due_at.date(),
                sentence=f"Follow-up task {task.task_id} was due on "
                f"{task.due_at.date().isoformat()} and is still open.",
                subject_id=task.task_id,
            )
        )
    return found


def _contract_renewals(
    tenant_id: str, customer_id: str, folded: CustomerFacts, owner_id: str | None, days_ahead: int
) -> list[ReminderDue]:
    # Contracts that do not renew themselves, ending within the tenant's horizon.
    today = folded.as_of.date()
    found = []
    horizon = today + timedelta(days=days_ahead)
    for contract in sorted(folded.contracts.values(), key=lambda k: k.ends_on):
        if contract.auto_renew or not today <= contract.ends_on <= horizon:
            continue
        days = (contract.ends_on - today).days
        found.append(
            ReminderDue(
                reminder_id=_id(
                    tenant_id, "contract", contract.contract_id, contract.ends_on.isoformat()
                ),
                kind="contract_renewal",
                customer_id=customer_id,
                assignee_id=owner_id,
                due_on=contract.ends_on,
                sentence=f"Contract {contract.contract_id} ends in {days} days: "
                "time to talk about renewing it.",
                subject_id=contract.contract_id,
            )
        )
    return found


def _gone_quiet(
    tenant_id: str,
    customer_id: str,
    folded: CustomerFacts,
    owner_id: str,
    registered_at: datetime | None,
    quiet_days: int,
) -> list[ReminderDue]:
    # No interaction for that long (since the last one, or since registration).
    interactions = folded.of(FactKind.INTERACTION)
    last = interactions[-1] if interactions else None
    since = last.at if last is not None else registered_at
    if since is None or folded.as_of - since < timedelta(days=quiet_days):
        return []
    days = (folded.as_of - since).days
    what = "no interaction" if last is not None else "no interaction since registration"
    return [
        ReminderDue(
            reminder_id=_id(
                tenant_id, "quiet", customer_id, last.event_id if last else "registered"
            ),
            kind="no_interaction",
            customer_id=customer_id,
            assignee_id=owner_id,
            due_on=folded.as_of.date(),
            sentence=f"{days} days with {what}: get in touch.",
        )
    ]


def _birthday_coming(
    tenant_id: str,
    customer_id: str,
    folded: CustomerFacts,
    owner_id: str,
    time_zone: str,
    days_ahead: int,
    birthday: Birthday,
) -> list[ReminderDue]:
    # The tenant's today (its time zone, as for loyalty's birthday bonus), not UTC's.
    local_today = folded.as_of.astimezone(ZoneInfo(time_zone)).date()
    coming = next_birthday(birthday, local_today)
    if (coming - local_today).days > days_ahead:
        return []
    return [
        ReminderDue(
            # Once per customer and year of the birthday (a reminder late in
            # December for early January counts for the new year).
            reminder_id=_id(tenant_id, "birthday", customer_id, str(coming.year)),
            kind="birthday",
            customer_id=customer_id,
            assignee_id=owner_id,
            # The day it fired, not the birthday: the event carries no personal data.
            due_on=local_today,
            sentence=(
                "Birthday today: a good moment to get in touch."
                if days_ahead == 0
                else f"Birthday within the next {days_ahead} days: "
                "a good moment to get in touch."
            ),
        )
    ]
