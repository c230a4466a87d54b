"""Subscriptions kept (each change an event on the subscription's stream, its row in
the same transaction), and the dispatcher that turns platform events into deliveries.

The dispatcher is a projection over every service's topic: for each event it files
one pending delivery per matching active subscription of the event's tenant, in the
runtime's batch transaction, keyed by (subscription, event id). A redelivered event
is skipped by the runtime, and would find its rows anyway: recorded exactly once.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy.ext.asyncio import AsyncConnection

from libs.events.catalog import DomainEvent, EventCatalog, contacts, loyalty, pipeline, tickets
from libs.events.catalog import alerts as alerts_events
from libs.events.consumer import ReceivedEvent
from libs.events.kafka import service_topic
from libs.events.projection import Projection, ProjectionRunner
from libs.events.store import NewEvent, personal_data_keys
from libs.events.vault import PersonalDataPolicy, PersonalDataVault, Subject
from libs.platform.errors import NotFound, PreconditionFailed, Unprocessable
from services.alerts.handlers import Alerts
from services.alerts.notifications import domain, read_model
from services.alerts.notifications.domain import (
    ContentMode,
    InvalidSubscription,
    Subscription,
    SubscriptionGone,
    erasure,
)
from services.alerts.notifications.domain.cloudevents_http import event_document
from services.alerts.notifications.domain.signing import InvalidSecret, key_of, new_secret
from services.alerts.notifications.settings import NotificationSettings

CATALOGS = (contacts.catalog, pipeline.catalog, tickets.catalog, loyalty.catalog)
# Who was erased, as every service records it: a row without a key. Alerts seals
# nothing, so no key is ever made here.
_ERASURES = PersonalDataVault(personal_data_keys, PersonalDataPolicy(erasure.PERSONAL_FIELDS))
TOPICS = ("contacts", "pipeline", "tickets", "loyalty", "alerts")
# Every type the platform publishes: what a subscription may name.
PLATFORM = EventCatalog(
    [c.model_for(t) for c in (*CATALOGS, alerts_events.catalog) for t in c.types],
    schema_base_url=alerts_events.catalog.schema_base_url,
)


def stream_of(subscription_id: str) -> str:
    return f"#webhook:{subscription_id}"


@dataclass
class Notifications:
    """What the notification handlers need, wired once by the app."""

    alerts: Alerts
    settings: NotificationSettings
    # Called when deliveries were filed or made due (the worker's wake-up).
    on_due: Callable[[], None] = field(default=lambda: None)
    # The dispatcher's runner, once started (how far it has read: tests, status).
    dispatcher: ProjectionRunner | None = None

    @property
    def known_types(self) -> list[str]:
        return PLATFORM.types


def state_of(row: Any) -> Subscription:
    return Subscription(
        subscription_id=row.subscription_id,
        channel=row.channel,
        url=row.url,
        event_types=tuple(row.event_types),
        content_mode=row.content_mode,
        status=row.status,
        consecutive_failures=row.consecutive_failures,
        version=row.version,
        disabled_reason=row.disabled_reason,
    )


def _target(n: Notifications, url: str) -> domain.Target:
    target = domain.check_target(url, allow_insecure=n.settings.webhook_allow_insecure_targets)
    if target.channel == "email" and not n.settings.smtp_host:
        raise InvalidSubscription("url", "e-mail is not configured here (SMTP_HOST)")
    return target


def _secret(supplied: str | None) -> str:
    if supplied is None:
        return new_secret()
    try:
        key_of(supplied)
    except InvalidSecret as refused:
        raise Unprocessable("secret", str(refused)) from None
    return supplied


async def _append(
    n: Notifications,
    conn: AsyncConnection,
    tenant_id: str,
    subscription_id: str,
    version: int,
    events: Sequence[DomainEvent],
    now: datetime,
) -> int:
    return await n.alerts.store.append(
        tenant_id,
        stream_of(subscription_id),
        version,
        [
            NewEvent.from_domain(e, partition_key=f"webhook:{subscription_id}", occurred_at=now)
            for e in events
        ],
        conn=conn,
    )


async def create(
    n: Notifications,
    tenant_id: str,
    *,
    url: str,
    event_types: Sequence[str],
    content_mode: ContentMode,
    description: str,
    secret: str | None,
    by: str,
) -> tuple[Any, str]:
    """The new subscription's row and its secret (shown to the caller this once)."""
    try:
        target = _target(n, url)
        types = domain.check_event_types(event_types, n.known_types)
    except InvalidSubscription as refused:
        raise Unprocessable(refused.field, refused.reason) from None
    chosen = _secret(secret)
    subscription_id = str(uuid.uuid4())
    now = n.alerts.clock()
    events = domain.subscribe(subscription_id, target, types, content_mode, by)
    async with n.alerts.engine.begin() as conn:
        version = await _append(n, conn, tenant_id, subscription_id, 0, events, now)
        await read_model.add_subscription(
            conn,
            tenant_id=tenant_id,
            subscription_id=subscription_id,
            channel=target.channel,
            url=target.url,
            secret=chosen,
            event_types=list(types),
            content_mode=content_mode,
            description=description,
            status="active",
            consecutive_failures=0,
            disabled_reason=None,
            version=version,
            created_at=now,
            updated_at=now,
        )
        row = await read_model.subscription(conn, tenant_id, subscription_id)
    n.alerts.appended(len(events))
    return row, chosen


async def _found(
    conn: AsyncConnection, tenant_id: str, subscription_id: str, expected: int | None
) -> Any:
    row = await read_model.subscription(conn, tenant_id, subscription_id, lock=True)
    if row is None or row.status == "deleted":
        raise NotFound(f"webhook {subscription_id} not found")
    if expected is not None and expected != row.version:
        raise PreconditionFailed("the webhook was changed meanwhile", version=row.version)
    return row


async def update(
    n: Notifications,
    tenant_id: str,
    subscription_id: str,
    *,
    url: str | None,
    event_types: Sequence[str] | None,
    content_mode: ContentMode | None,
    description: str | None,
    secret: str | None,
    rotate_secret: bool,
    enabled: bool | None,
    by: str,
    expected: int | None,
) -> tuple[Any, str | None]:
    """The changed row, and the new secret when one was asked for."""
    try:
        target = _target(n, url) if url is not None else None
        types = (
            domain.check_event_types(event_types, n.known_types)
            if event_types is not None
            else None
        )
    except InvalidSubscription as refused:
        raise Unprocessable(refused.field, refused.reason) from None
    if secret is not None and rotate_secret:
        raise Unprocessable("rotate_secret", "supply a secret or ask for a new one, not both")
    new = _secret(secret) if secret is not None or rotate_secret else None
    now = n.alerts.clock()
    async with n.alerts.engine.begin() as conn:
        row = await _found(conn, tenant_id, subscription_id, expected)
        state = state_of(row)
        try:
            events = domain.change(
                state,
                target=target,
                event_types=types,
                content_mode=content_mode,
                secret_rotated=new is not None,
                enabled=enabled,
                by=by,
            )
        except SubscriptionGone:
            raise NotFound(f"webhook {subscription_id} not found") from None
        values: dict[str, Any] = {}
        if description is not None and description != row.description:
            values["description"] = description
        if events:
            values["version"] = await _append(
                n, conn, tenant_id, subscription_id, row.version, events, now
            )
            after = state
            for event in events:
                after = domain.evolve(after, event, target.url if target else None)
            values |= {
                "channel": after.channel,
                "url": after.url,
                "event_types": list(after.event_types),
                "content_mode": after.content_mode,
                "status": after.status,
                "consecutive_failures": after.consecutive_failures,
                "disabled_reason": after.disabled_reason,
            }
            if new is not None:
                values["secret"] = new
            if state.status == "disabled" and after.status == "active":
                await read_model.resume(conn, tenant_id, subscription_id, now)
        if values:
            values["updated_at"] = now
            await read_model.change_subscription(conn, tenant_id, subscription_id, **values)
        changed = await read_model.subscription(conn, tenant_id, subscription_id)
    n.alerts.appended(len(events))
    n.on_due()
    return changed, new


async def delete(
    n: Notifications, tenant_id: str, subscription_id: str, by: str, expected: int | None
) -> None:
    """Gone for the tenant; its pending deliveries are cancelled, its log kept."""
    now = n.alerts.clock()
    async with n.alerts.engine.begin() as conn:
        row = await _found(conn, tenant_id, subscription_id, expected)
        events = domain.unsubscribe(state_of(row), by)
        version = await _append(n, conn, tenant_id, subscription_id, row.version, events, now)
        await read_model.change_subscription(
            conn, tenant_id, subscription_id, status="deleted", version=version, updated_at=now
        )
        await read_model.cancel_pending(conn, tenant_id, subscription_id)
    n.alerts.appended(len(events))


async def visible(conn: AsyncConnection, tenant_id: str, subscription_id: str) -> Any:
    row = await read_model.subscription(conn, tenant_id, subscription_id)
    if row is None or row.status == "deleted":
        raise NotFound(f"webhook {subscription_id} not found")
    return row


class WebhookDispatch(Projection):
    """Files a pending delivery per matching subscription for every platform event."""

    name: ClassVar[str] = "alerts_webhook_dispatch"

    def __init__(self, notifications: Notifications, generation: int = 1) -> None:
        super().__init__(generation)
        self.notifications = notifications
        self.topics = [service_topic(t) for t in TOPICS]

    async def apply(self, conn: AsyncConnection, event: ReceivedEvent) -> None:
        await self.apply_many(conn, [event])

    async def apply_many(self, conn: AsyncConnection, events: Sequence[ReceivedEvent]) -> None:
        now = self.notifications.alerts.clock()
        by_tenant: dict[str, list[Any]] = {}
        erased = await self._erased(conn, events)
        filed = 0
        for received in events:
            envelope = received.envelope
            tenant_id = envelope.tenantid
            subject = erasure.erased_subject(received.event)
            if subject is not None:
                await self._forget(conn, tenant_id, subject)
                erased.add((tenant_id, subject))
            if tenant_id not in by_tenant:
                by_tenant[tenant_id] = await read_model.active_subscriptions(conn, tenant_id)
            document = event_document(envelope)
            # Published before the erasure, read after it (topics are read side by side).
            if (tenant_id, envelope.partitionkey) in erased:
                document = erasure.redacted(document)
            for sub in by_tenant[tenant_id]:
                # Only what happened since the subscription began: a consumer that
                # starts from the earliest offset must not send a tenant's history.
                if envelope.time < sub.created_at:
                    continue
                if domain.matches(sub.event_types, envelope.type):
                    await read_model.enqueue(conn, tenant_id, sub.subscription_id, document, now)
                    filed += 1
        if filed:
            self.notifications.on_due()

    async def _erased(self, conn: AsyncConnection, events: Sequence[ReceivedEvent]) -> set[Subject]:
        """The subjects of personal events in ``events`` already erased (recorded by
        ``_forget`` in this database's ``personal_data_keys``, with no key)."""
        subjects = [
            (e.envelope.tenantid, e.envelope.partitionkey)
            for e in events
            if erasure.is_personal(e.envelope.type)
        ]
        if not subjects:
            return set()
        keys = await _ERASURES.keys(conn, subjects)
        return {subject for subject, key in keys.items() if key is None}

    async def _forget(self, conn: AsyncConnection, tenant_id: str, subject_id: str) -> None:
        await _ERASURES.erase(conn, tenant_id, subject_id)
        await read_model.redact_deliveries(conn, tenant_id, subject_id, erasure.redacted)
