"""The services whose events make up the 360 view.

A new source (pipeline, tickets, loyalty, alerts) is a module like
``from_contacts.py`` and one more entry in ``SOURCES``; a rebuild then fills a new
generation with its history. Nothing else changes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from libs.events.catalog import DomainEvent, EventCatalog, UnknownEventType
from services.customer360.domain.from_alerts import ALERTS
from services.customer360.domain.from_contacts import CONTACTS
from services.customer360.domain.from_loyalty import LOYALTY
from services.customer360.domain.from_pipeline import PIPELINE
from services.customer360.domain.from_tickets import TICKETS
from services.customer360.domain.view import Source

SOURCES: tuple[Source, ...] = (CONTACTS, PIPELINE, TICKETS, LOYALTY, ALERTS)


class SourcesCatalog(EventCatalog):
    """Decodes with the catalog of whichever source knows the type (with its upcasters)."""

    def __init__(self, catalogs: Sequence[EventCatalog]) -> None:
        super().__init__()
        self.catalogs = tuple(catalogs)

    def __contains__(self, type_name: object) -> bool:
        return any(type_name in c for c in self.catalogs)

    @property
    def types(self) -> list[str]:
        return sorted({t for c in self.catalogs for t in c.types})

    def decode(self, type_name: str, data: Mapping[str, Any]) -> DomainEvent:
        for catalog in self.catalogs:
            if type_name in catalog:
                return catalog.decode(type_name, data)
        raise UnknownEventType(type_name)


def catalog_of(sources: Sequence[Source]) -> EventCatalog:
    if len(sources) == 1:
        return sources[0].catalog
    return SourcesCatalog([s.catalog for s in sources])


# What the projector decodes with: every source's catalog (``crm rebuild`` uses it too).
catalog = catalog_of(SOURCES)
