"""``/api/v1/webhooks``: a tenant's subscriptions to platform events and their
delivery logs. Every endpoint needs ``webhooks:manage`` (admins and managers): a
subscription sends the tenant's events out of the platform.

The secret is returned once, by the create (or by an update that rotates it).
Another tenant's subscription, or a deleted one, is a 404.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Depends, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from libs.auth import Principal, require
from libs.platform.dependencies import IfMatch, decode_cursor, encode_cursor, etag_for
from libs.platform.routing import ServiceRouter
from services.alerts.notifications import handlers, read_model
from services.alerts.notifications.domain import MAX_EVENT_TYPES, ContentMode
from services.alerts.notifications.handlers import Notifications

router = ServiceRouter(prefix="/api/v1/webhooks", tags=["webhooks"])

Manager = Annotated[Principal, Depends(require("webhooks:manage"))]
WebhookId = Annotated[str, Path(pattern=r"^[0-9a-f-]{36}$", description="the webhook's id")]
EventTypes = Annotated[
    list[Annotated[str, Field(max_length=128)]],
    Field(
        min_length=1,
        max_length=MAX_EVENT_TYPES,
        description="event types (crm.alerts.alert_opened.v1) or wildcards "
        "(crm.alerts.*, crm.*, *)",
    ),
]
Secret = Annotated[
    str,
    Field(
        min_length=38,
        max_length=100,
        description="whsec_ followed by the base64 of a 24 to 64 byte key",
    ),
]
DeliveryStatus = Literal["pending", "delivered", "failed", "cancelled"]


async def notifications_of(request: Request) -> Notifications:
    notifications: Notifications = request.app.state.notifications
    return notifications


NotificationsDep = Annotated[Notifications, Depends(notifications_of)]


class CreateWebhook(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(max_length=2048, description="https:// receiver, or mailto:address for e-mail")
    event_types: EventTypes
    content_mode: ContentMode = "structured"
    description: str = Field(default="", max_length=500)
    secret: Secret | None = Field(default=None, description="absent: one is generated")


class UpdateWebhook(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(default=None, max_length=2048)
    event_types: EventTypes | None = None
    content_mode: ContentMode | None = None
    description: str | None = Field(default=None, max_length=500)
    secret: Secret | None = None
    rotate_secret: bool = Field(default=False, description="generate a new secret")
    enabled: bool | None = Field(
        default=None, description="true enables a disabled webhook again; false disables it"
    )


def webhook_view(row: Any, secret: str | None = None) -> dict[str, Any]:
    view = {
        "id": row.subscription_id,
        "url": row.url,
        "channel": row.channel,
        "event_types": list(row.event_types),
        "content_mode": row.content_mode,
        "description": row.description,
        "status": row.status,
        "consecutive_failures": row.consecutive_failures,
        "disabled_reason": row.disabled_reason,
        "version": row.version,
        "created_at": row.created_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
    }
    if secret is not None:
        view["secret"] = secret
    return view


def delivery_view(row: Any) -> dict[str, Any]:
    def at(value: Any) -> str | None:
        return value.isoformat() if value is not None else None

    return {
        "event_id": row.event_id,
        "event_type": row.event_type,
        "status": row.status,
        "attempts": row.attempts,
        "created_at": at(row.created_at),
        "last_attempt_at": at(row.last_attempt_at),
        "next_attempt_at": at(row.next_attempt_at) if row.status == "pending" else None,
        "delivered_at": at(row.delivered_at),
        "last_status_code": row.last_status_code,
        "last_error": row.last_error,
        "log": row.log,
    }


@router.post("", status_code=201)
async def create_webhook(
    body: CreateWebhook, principal: Manager, n: NotificationsDep, response: Response
) -> dict[str, Any]:
    """Subscribe a receiver to event types. The answer carries the secret that signs
    every delivery: it is not shown again."""
    row, secret = await handlers.create(
        n,
        principal.tenant_id,
        url=body.url,
        event_types=body.event_types,
        content_mode=body.content_mode,
        description=body.description,
        secret=body.secret,
        by=principal.subject[:64],
    )
    response.headers["Location"] = f"/api/v1/webhooks/{row.subscription_id}"
    response.headers["ETag"] = etag_for(row.version)
    return webhook_view(row, secret)


@router.get("")
async def list_webhooks(principal: Manager, n: NotificationsDep) -> dict[str, Any]:
    async with n.alerts.engine.connect() as conn:
        rows = await read_model.tenant_subscriptions(conn, principal.tenant_id)
    return {"items": [webhook_view(r) for r in rows]}


@router.get("/{webhook_id}")
async def get_webhook(
    webhook_id: WebhookId, principal: Manager, n: NotificationsDep, response: Response
) -> dict[str, Any]:
    async with n.alerts.engine.connect() as conn:
        row = await handlers.visible(conn, principal.tenant_id, webhook_id)
    response.headers["ETag"] = etag_for(row.version)
    return webhook_view(row)


@router.patch("/{webhook_id}")
async def update_webhook(
    webhook_id: WebhookId,
    body: UpdateWebhook,
    principal: Manager,
    n: NotificationsDep,
    response: Response,
    expected: IfMatch = None,
) -> dict[str, Any]:
    """Change what is given; ``enabled: true`` enables a disabled webhook again (its
    pending deliveries are retried at once). A new secret is shown in this answer."""
    row, secret = await handlers.update(
        n,
        principal.tenant_id,
        webhook_id,
        url=body.url,
        event_types=body.event_types,
        content_mode=body.content_mode,
        description=body.description,
        secret=body.secret,
        rotate_secret=body.rotate_secret,
        enabled=body.enabled,
        by=principal.subject[:64],
        expected=expected,
    )
    response.headers["ETag"] = etag_for(row.version)
    return webhook_view(row, secret)


@router.delete("/{webhook_id}", status_code=204)
async def delete_webhook(
    webhook_id: WebhookId, principal: Manager, n: NotificationsDep, expected: IfMatch = None
) -> Response:
    """No more deliveries; those pending are cancelled."""
    await handlers.delete(n, principal.tenant_id, webhook_id, principal.subject[:64], expected)
    return Response(status_code=204)


@router.get("/{webhook_id}/deliveries")
async def list_deliveries(
    webhook_id: WebhookId,
    principal: Manager,
    n: NotificationsDep,
    status: DeliveryStatus | None = None,
    cursor: Annotated[str | None, Query(max_length=40)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    """The delivery log, newest first: each event's status, attempts and their outcomes."""
    (offset,) = decode_cursor(cursor, int) if cursor is not None else (0,)
    async with n.alerts.engine.connect() as conn:
        await handlers.visible(conn, principal.tenant_id, webhook_id)
        rows = await read_model.delivery_log(
            conn, principal.tenant_id, webhook_id, status, limit + 1, offset
        )
    return {
        "items": [delivery_view(r) for r in rows[:limit]],
        "next_cursor": encode_cursor(offset + limit) if len(rows) > limit else None,
    }
