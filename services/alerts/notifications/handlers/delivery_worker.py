"""The delivery worker: takes due deliveries from the database, sends them, records
what happened.

Pending deliveries live in ``webhook_deliveries``, never only in memory: a worker
that stops (or dies mid-send) leaves them pending, and the next one takes them
when they are due (a send in flight is leased, and taken again when the lease
ends). A receiver may therefore get one event twice; the ``webhook-id`` header
(the event's id, also the CloudEvent's ``id``) is what it deduplicates on. What is
recorded, the delivery's row and its ``NotificationSent``, happens once: an
outcome only counts while the attempt it reports is still the delivery's latest.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from email.message import EmailMessage
from typing import Any

import aiosmtplib
import httpx

from libs.events.catalog.alerts import NotificationSent
from libs.events.store import NewEvent
from services.alerts.notifications import domain, read_model
from services.alerts.notifications.domain.cloudevents_http import request_of
from services.alerts.notifications.domain.signing import signed_headers
from services.alerts.notifications.handlers import (
    Notifications,
    delivery_metrics,
    state_of,
    stream_of,
)
from services.alerts.notifications.handlers.webhook_client import (
    CheckedBackend,
    Resolve,
    TargetRefused,
    resolve_host,
    webhook_client,
)

log = logging.getLogger(__name__)
NAMESPACE = uuid.UUID("4d1c3a0e-8f5e-4b52-9d8e-5f0a8b3c2e71")
BATCH = 50
# Longer than any send can take (the timeout), so a live worker never loses its lease.
LEASE_MARGIN_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class Outcome:
    delivered: bool
    status_code: int | None
    error: str | None
    reason: str | None  # status, timeout, connection, refused, smtp
    duration_ms: int
    final: bool = False  # no retry can mend it: given up at once


def notification_id(tenant_id: str, subscription_id: str, event_id: str) -> str:
    return str(uuid.uuid5(NAMESPACE, f"{tenant_id}/{subscription_id}/{event_id}"))


class DeliveryWorker:
    def __init__(self, notifications: Notifications, resolve: Resolve = resolve_host) -> None:
        """``resolve``: how target names become addresses (tests answer for DNS)."""
        self.n = notifications
        self.settings = notifications.settings
        self.policy = notifications.settings.delivery_policy()
        self.wakeup = asyncio.Event()
        self.backend = CheckedBackend(
            resolve, refuse_internal=not self.settings.webhook_allow_insecure_targets
        )
        self.client: httpx.AsyncClient | None = None
        delivery_metrics.start_at_zero()

    def wake(self) -> None:
        self.wakeup.set()

    async def run(self, stop: asyncio.Event) -> None:
        self.client = webhook_client(self.backend, self.settings.webhook_timeout_seconds)
        try:
            while not stop.is_set():
                self.wakeup.clear()
                if await self.deliver_due():
                    continue
                waiting = asyncio.ensure_future(self.wakeup.wait())
                stopping = asyncio.ensure_future(stop.wait())
                await asyncio.wait(
                    {waiting, stopping},
                    timeout=self.settings.webhook_poll_seconds,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                for task in (waiting, stopping):
                    task.cancel()
        finally:
            await self.client.aclose()
            self.client = None

    async def deliver_due(self) -> int:
        """Send every delivery due now (a batch at a time); how many were taken."""
        now = self.n.alerts.clock()
        lease = now + timedelta(
            seconds=self.settings.webhook_timeout_seconds + LEASE_MARGIN_SECONDS
        )
        async with self.n.alerts.engine.begin() as conn:
            claimed = await read_model.claim_due(conn, now, lease, BATCH)
        if not claimed:
            return 0
        limit = asyncio.Semaphore(self.settings.webhook_concurrency)

        async def one(row: Any) -> None:
            async with limit:
                try:
                    await self._attempt(row)
                except Exception:
                    # Left leased: taken again when the lease ends.
                    log.exception("webhook delivery %s failed to record", row.event_id)

        await asyncio.gather(*(one(row) for row in claimed))
        return len(claimed)

    async def _attempt(self, row: Any) -> None:
        attempt = row.attempts + 1  # the claim counted it
        if row.channel == "email":
            outcome = await self._email(row)
        else:
            outcome = await self._post(row)
        await self._record(row, attempt, outcome)

    async def _post(self, row: Any) -> Outcome:
        assert self.client is not None
        headers, body = request_of(row.document, row.content_mode)
        headers |= signed_headers(row.secret, row.event_id, int(time.time()), body)
        started = time.perf_counter()
        try:
            response = await self.client.post(row.url, content=body, headers=headers)
        except TargetRefused as refused:
            return Outcome(False, None, f"refused: {refused}", "refused", _ms(started), final=True)
        except httpx.TimeoutException as failed:
            return Outcome(False, None, f"timed out: {failed!r}", "timeout", _ms(started))
        except httpx.HTTPError as failed:
            return Outcome(
                False, None, f"{type(failed).__name__}: {failed}", "connection", _ms(started)
            )
        code = response.status_code
        if 200 <= code < 300:
            return Outcome(True, code, None, None, _ms(started))
        # A redirect could point anywhere, an internal address too: never followed.
        error = f"HTTP {code}" + (": redirects are not followed" if 300 <= code < 400 else "")
        return Outcome(False, code, error, "status", _ms(started))

    async def _email(self, row: Any) -> Outcome:
        s = self.settings
        document = row.document
        message = EmailMessage()
        message["From"] = s.smtp_from
        message["To"] = row.url.removeprefix("mailto:")
        message["Subject"] = f"[CRM] {document['type']} {document.get('subject', '')}".strip()
        message["X-CRM-Event-Id"] = row.event_id
        message["X-CRM-Event-Type"] = document["type"]
        message.set_content(json.dumps(document, indent=2, ensure_ascii=False))
        started = time.perf_counter()
        try:
            await aiosmtplib.send(
                message,
                hostname=s.smtp_host,
                port=s.smtp_port,
                username=s.smtp_username,
                password=s.smtp_password.get_secret_value() if s.smtp_password else None,
                use_tls=s.smtp_use_tls,
                start_tls=s.smtp_starttls,
                timeout=s.webhook_timeout_seconds,
            )
        except (aiosmtplib.SMTPException, OSError) as failed:
            return Outcome(False, None, f"{type(failed).__name__}: {failed}", "smtp", _ms(started))
        return Outcome(True, None, None, None, _ms(started))

    async def _record(self, claimed: Any, attempt: int, outcome: Outcome) -> None:
        now = self.n.alerts.clock()
        tenant_id, subscription_id = claimed.tenant_id, claimed.subscription_id
        appended = 0
        async with self.n.alerts.engine.begin() as conn:
            sub = await read_model.subscription(conn, tenant_id, subscription_id, lock=True)
            row = await read_model.delivery(conn, tenant_id, subscription_id, claimed.event_id)
            if sub is None or row is None or row.status != "pending" or row.attempts != attempt:
                return  # another worker took it after this one's lease ran out
            jitter, state = random.uniform(-1, 1), state_of(sub)
            verdict = domain.after_attempt(
                self.policy, state, attempt, outcome.delivered, now, jitter, final=outcome.final
            )
            await read_model.record_attempt(
                conn,
                row,
                status=verdict.status,
                next_attempt_at=verdict.next_attempt_at,
                at=now,
                status_code=outcome.status_code,
                error=outcome.error,
                duration_ms=outcome.duration_ms,
            )
            changes: dict[str, Any] = {"consecutive_failures": verdict.consecutive_failures}
            if outcome.delivered:
                sent = NotificationSent(
                    notification_id=notification_id(tenant_id, subscription_id, row.event_id),
                    subscription_id=subscription_id,
                    channel=sub.channel,
                    event_id=row.event_id,
                    event_type=row.event_type,
                    attempts=attempt,
                )
                # Its own stream at version 0: a second record of it cannot be appended.
                await self.n.alerts.store.append(
                    tenant_id,
                    f"#notification:{sent.notification_id}",
                    0,
                    [
                        NewEvent.from_domain(
                            sent,
                            partition_key=str(row.document.get("partitionkey") or subscription_id),
                            occurred_at=now,
                        )
                    ],
                    conn=conn,
                )
                appended += 1
            if verdict.disable is not None and sub.status == "active":
                changes["version"] = await self.n.alerts.store.append(
                    tenant_id,
                    stream_of(subscription_id),
                    sub.version,
                    [
                        NewEvent.from_domain(
                            verdict.disable,
                            partition_key=f"webhook:{subscription_id}",
                            occurred_at=now,
                        )
                    ],
                    conn=conn,
                )
                changes |= {
                    "status": "disabled",
                    "disabled_reason": verdict.disable.reason,
                    "updated_at": now,
                }
                appended += 1
            await read_model.change_subscription(conn, tenant_id, subscription_id, **changes)
        self.n.alerts.appended(appended)
        channel = claimed.channel
        result = "delivered" if outcome.delivered else "failed"
        delivery_metrics.DELIVERIES.labels(channel, result).inc()
        if not outcome.delivered:
            delivery_metrics.FAILURES.labels(channel, outcome.reason or "unknown").inc()
            if verdict.status == "failed":
                delivery_metrics.GIVEN_UP.labels(channel).inc()
        if verdict.disable is not None and sub.status == "active":
            delivery_metrics.DISABLED.inc()
            log.warning("webhook %s disabled: %s", subscription_id, verdict.disable.reason)


def _ms(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)
