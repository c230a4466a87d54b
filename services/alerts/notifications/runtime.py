"""What notifications run beside the alerts API: the dispatcher (a consumer of every
service's topic) and the delivery worker. Wired by ``services.alerts.app``."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from libs.events.projection import ProjectionRunner
from services.alerts.handlers import Alerts
from services.alerts.notifications.handlers import PLATFORM, Notifications, WebhookDispatch
from services.alerts.notifications.settings import NotificationSettings
from services.alerts.notifications.worker import DeliveryWorker
from services.alerts.settings import Settings

Run = Callable[[asyncio.Event], Awaitable[None]]


def wire(settings: Settings, alerts: Alerts) -> tuple[Notifications, DeliveryWorker]:
    notifications = Notifications(alerts, settings)
    worker = DeliveryWorker(notifications)
    notifications.on_due = worker.wake
    return notifications, worker


def background(
    settings: Settings, notifications: Notifications, worker: DeliveryWorker
) -> dict[str, Run]:
    """Named loops for the app to keep running (the dispatcher runs where the churn
    projector does; the worker where ``RUN_WEBHOOK_WORKER`` says)."""
    loops: dict[str, Run] = {}
    if settings.run_projector:
        dispatcher = ProjectionRunner(
            WebhookDispatch(notifications), notifications.alerts.engine, settings.kafka(), PLATFORM
        )
        notifications.dispatcher = dispatcher
        loops["webhook dispatcher"] = dispatcher.run
    if isinstance(settings, NotificationSettings) and settings.run_webhook_worker:
        loops["webhook worker"] = worker.run
    return loops
