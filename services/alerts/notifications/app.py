"""How notifications are wired for the alerts app: the dispatcher (a consumer of every
service's topic) and the delivery worker, which ``services.alerts.app`` runs."""

from __future__ import annotations

from libs.events.projection import ProjectionRunner
from services.alerts.handlers import Alerts
from services.alerts.notifications.handlers import PLATFORM, Notifications, WebhookDispatch
from services.alerts.notifications.handlers.delivery_worker import DeliveryWorker
from services.alerts.notifications.handlers.webhook_client import Resolve, resolve_host
from services.alerts.settings import Settings


def wire(
    settings: Settings, alerts: Alerts, resolve: Resolve = resolve_host
) -> tuple[Notifications, DeliveryWorker]:
    """The notifications, their delivery worker, and (where the churn projector runs)
    the dispatcher that consumes every service's topic."""
    notifications = Notifications(alerts, settings)
    worker = DeliveryWorker(notifications, resolve)
    notifications.on_due = worker.wake
    if settings.run_projector:
        notifications.dispatcher = ProjectionRunner(
            WebhookDispatch(notifications), alerts.engine, settings.kafka(), PLATFORM
        )
    return notifications, worker
