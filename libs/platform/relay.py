"""The outbox relay every writing service runs, built one way: a service that built its
own once forgot the operator's ``EVENT_SCHEMA_BASE_URL`` in its events' ``dataschema``."""

from __future__ import annotations

from libs.events.catalog import EventCatalog
from libs.events.kafka import service_topic
from libs.events.outbox import OutboxRelay
from libs.events.store import EventStore
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
        schema_url=lambda type_name: settings.event_schema_url(
            type_name, catalog.schema_url(type_name)
        ),
    )
