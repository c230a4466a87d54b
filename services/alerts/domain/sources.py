"""Other services' events as the churn rules see them: each becomes at most one fact.

Only the types below are read (the projector skips every other type; ``PointsEarned``
is read and makes no fact). A fact keeps
the event's business time: an order's ``placed_at``, an interaction's
``occurred_at``, a breach's ``due_at``; otherwise the envelope's time.
"""

from __future__ import annotations

from datetime import datetime

from libs.events.catalog import DomainEvent, EventCatalog
from libs.events.catalog.contacts import (
    CustomerMerged,
    CustomerMergedInto,
    CustomerRegistered,
    InteractionLogged,
    KeyContactChanged,
    OwnerChanged,
    PersonalDataErased,
    ProfileChanged,
)
from libs.events.catalog.loyalty import CheckedIn, PointsEarned, PointsRedeemed
from libs.events.catalog.pipeline import (
    ContractRenewed,
    ContractSigned,
    ContractTerminated,
    OrderCancelled,
    OrderPlaced,
    OrderRefunded,
    TaskCompleted,
    TaskCreated,
    TaskRescheduled,
)
from libs.events.catalog.tickets import CsatAnswered, NpsAnswered, SlaBreached, TicketOpened
from services.alerts.domain.facts import Fact, FactKind

SOURCES = EventCatalog(
    [
        CustomerRegistered,
        OwnerChanged,
        InteractionLogged,
        KeyContactChanged,
        CustomerMergedInto,
        CustomerMerged,
        ProfileChanged,
        PersonalDataErased,
        OrderPlaced,
        OrderRefunded,
        OrderCancelled,
        ContractSigned,
        ContractRenewed,
        ContractTerminated,
        TaskCreated,
        TaskRescheduled,
        TaskCompleted,
        TicketOpened,
        SlaBreached,
        NpsAnswered,
        CsatAnswered,
        PointsEarned,
        PointsRedeemed,
        CheckedIn,
    ],
    schema_base_url="https://schemas.crm.example/events",
)
TOPICS = ("contacts", "pipeline", "tickets", "loyalty")


def fact_of(event: DomainEvent, event_id: str, time: datetime) -> Fact | None:
    """The fact an event is to the churn rules, or None (not a churn fact)."""
    match event:
        case OrderPlaced():
            return Fact(
                FactKind.ORDER, event.placed_at, event_id, ref=event.order_id, value=event.total
            )
        case OrderRefunded():
            return Fact(FactKind.REFUND, time, event_id, ref=event.order_id, value=event.amount)
        case OrderCancelled():
            return Fact(FactKind.ORDER_CANCELLED, time, event_id, ref=event.order_id)
        case ContractSigned():
            return Fact(
                FactKind.CONTRACT_SIGNED,
                time,
                event_id,
                ref=event.contract_id,
                until=event.ends_on,
                flag=event.auto_renew,
            )
        case ContractRenewed():
            return Fact(
                FactKind.CONTRACT_RENEWED,
                time,
                event_id,
                ref=event.contract_id,
                until=event.ends_on,
            )
        case ContractTerminated():
            return Fact(
                FactKind.CONTRACT_TERMINATED,
                time,
                event_id,
                ref=event.contract_id,
                until=event.terminated_on,
            )
        case TicketOpened() if event.category == "complaint":
            return Fact(FactKind.COMPLAINT, time, event_id, ref=event.ticket_id)
        case SlaBreached():
            return Fact(FactKind.SLA_BREACH, event.due_at, event_id, ref=event.ticket_id)
        case NpsAnswered():
            return Fact(FactKind.NPS, time, event_id, ref=event.survey_id, value=event.score)
        case CsatAnswered():
            return Fact(FactKind.CSAT, time, event_id, ref=event.survey_id, value=event.score)
        case InteractionLogged():
            return Fact(FactKind.INTERACTION, event.occurred_at, event_id, ref=event.interaction_id)
        # A first key contact (nobody before) is news, not a change of relationship.
        case KeyContactChanged() if event.previous_contact_id is not None:
            return Fact(FactKind.KEY_CONTACT_CHANGED, time, event_id, ref=event.role)
        # Points earned are the consequence of another fact (an order, a check-in, a
        # survey answered) or the business's gift (a birthday, a campaign): counted as
        # loyalty activity, every purchase would count twice (decision 0093). The
        # customer's own loyalty acts are check-ins and redemptions.
        case PointsRedeemed():
            return Fact(FactKind.LOYALTY_ACTIVITY, time, event_id, ref=event.redemption_id)
        case CheckedIn():
            return Fact(FactKind.LOYALTY_ACTIVITY, time, event_id)
    return None
