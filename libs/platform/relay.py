"""The outbox relay every writing service runs, built one way: a service that built its
own once forgot the operator's ``EVENT_SCHEMA_BASE_URL`` in its events' ``dataschema``."""

from __future__ import annotations

from importlib import import_module

from sqlalchemy.ext.asyncio import AsyncEngine

from libs.events.catalog import EventCatalog
from libs.events.kafka import service_topic
from libs.events.outbox import OutboxRelay
from libs.events.store import EventStore
from libs.platform.service import ServiceDeclaration
from libs.platform.settings import ServiceSettings


def outbox_relay(
    settings: ServiceSettings,
    store: EventStore,
    *,
    service: str,
    source: str,
    catalog: EventCatalog,
) -> OutboxRelay:
    """What serving and ``crm republish <service>`` both publish through: the service's
    topic, its CloudEvents ``source``, and each event's schema URL (the operator's base
    URL when set, else the catalogue's)."""
    return OutboxRelay(
        store,
        settings.kafka(),
        service=service,
        topic=service_topic(service),
        source=source,
        idle_poll_seconds=settings.outbox_idle_poll_seconds,
        idle_max_poll_seconds=settings.outbox_idle_max_poll_seconds,
        schema_url=lambda type_name: settings.event_schema_url(
            type_name, catalog.schema_url(type_name)
        ),
    )


def service_relay(
    declaration: ServiceDeclaration, settings: ServiceSettings, engine: AsyncEngine
) -> OutboxRelay:
    """The service's own store and relay, as its declaration names them: the catalogue
    module it ``publishes`` (its ``catalog``, and its ``PERSONAL_DATA`` policy where
    its events carry personal data), its topic and its source ``/crm/<name>``. Serving
    and ``crm republish`` both build it here, so a republish goes through exactly what
    publishing goes through."""
    if declaration.publishes is None:
        raise ValueError(f"{declaration.name} publishes no events")
    events = import_module(declaration.publishes)
    return outbox_relay(
        settings,
        EventStore(engine, personal_data=getattr(events, "PERSONAL_DATA", None)),
        service=declaration.name,
        source=f"/crm/{declaration.name}",
        catalog=events.catalog,
    )
