"""Other services' events as the analytics projection reads them (it skips every other
type). Each keeps its business time: an order's ``placed_at``, a registration's
``registered_at``, an interaction's ``occurred_at``, a tier change's ``changed_at``,
a risk's ``as_of``; otherwise (refunds, cancellations, tags, answers) the envelope's."""

from __future__ import annotations

from libs.events.catalog import EventCatalog
from libs.events.catalog.alerts import ChurnRiskChanged
from libs.events.catalog.contacts import (
    CustomerMergedInto,
    CustomerRegistered,
    CustomerTagged,
    CustomerUntagged,
    InteractionLogged,
    OwnerChanged,
    ProfileChanged,
)
from libs.events.catalog.loyalty import TierChanged
from libs.events.catalog.pipeline import (
    ContractRenewed,
    ContractSigned,
    ContractTerminated,
    OrderCancelled,
    OrderPlaced,
    OrderRefunded,
)
from libs.events.catalog.tickets import CsatAnswered, NpsAnswered, TicketOpened

SOURCES = EventCatalog(
    [
        CustomerRegistered,
        ProfileChanged,
        CustomerTagged,
        CustomerUntagged,
        OwnerChanged,
        CustomerMergedInto,
        InteractionLogged,
        OrderPlaced,
        OrderRefunded,
        OrderCancelled,
        ContractSigned,
        ContractRenewed,
        ContractTerminated,
        TicketOpened,
        NpsAnswered,
        CsatAnswered,
        TierChanged,
        ChurnRiskChanged,
    ],
    schema_base_url="https://schemas.crm.example/events",
)
TOPICS = ("contacts", "pipeline", "tickets", "loyalty", "alerts")
