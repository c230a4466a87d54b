"""Reminders a rep should act on: a contract's end coming near without renewal, an owned
customer gone quiet. Each has an id derived from what it is about, so it fires once:
once per contract end date, once per silence (a new interaction starts a new one)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from libs.events.catalog.alerts import ChurnRules, ReminderDue
from services.alerts.domain.facts import CustomerFacts, FactKind

_REMINDERS = uuid.UUID("0c7d6a2b-3f55-4c1e-8d7a-91b2e4f6a0d3")


def _id(tenant_id: str, *parts: str) -> str:
    return str(uuid.uuid5(_REMINDERS, "/".join((tenant_id, *parts))))


def due_reminders(
    tenant_id: str,
    customer_id: str,
    folded: CustomerFacts,
    owner_id: str | None,
    registered_at: datetime | None,
    rules: ChurnRules,
) -> list[ReminderDue]:
    today = folded.as_of.date()
    found = []
    if rules.contract_renewal_days is not None:
        horizon = today + timedelta(days=rules.contract_renewal_days)
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
    if rules.no_interaction_days is not None and owner_id is not None:
        interactions = folded.of(FactKind.INTERACTION)
        last = interactions[-1] if interactions else None
        since = last.at if last is not None else registered_at
        if since is not None and folded.as_of - since >= timedelta(days=rules.no_interaction_days):
            days = (folded.as_of - since).days
            what = "no interaction" if last is not None else "no interaction since registration"
            found.append(
                ReminderDue(
                    reminder_id=_id(
                        tenant_id, "quiet", customer_id, last.event_id if last else "registered"
                    ),
                    kind="no_interaction",
                    customer_id=customer_id,
                    assignee_id=owner_id,
                    due_on=today,
                    sentence=f"{days} days with {what}: get in touch.",
                )
            )
    return found
