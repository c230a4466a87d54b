"""The alerts service's settings: the shared ones plus what only alerts needs."""

from __future__ import annotations

from typing import ClassVar

from libs.platform.settings import ServiceSettings
from services.alerts.notifications.settings import NotificationSettings


class Settings(ServiceSettings, NotificationSettings):
    service_name: ClassVar[str] = "alerts"

    http_port: int = 8005
    # False serves the API only: another process keeps the churn facts.
    run_projector: bool = True
    # How often the customers due for it are assessed again as of now (signals that grow
    # with time alone: an order becoming overdue, a contract's end coming near). A round
    # reads only the customers whose review time has come (decision 0093): cheap when
    # nobody is due, so it can run often.
    sweep_seconds: float = 300.0
    run_sweep: bool = True
    # How often rankings as of a past time asked for (POST /api/v1/churn/rankings) are
    # looked for and scored, by one process per database.
    past_rankings_seconds: float = 2.0
    run_past_rankings: bool = True
    # How often the weekly lists due (Monday 09:00 in each tenant's time zone) are
    # looked for and published (once per tenant and week).
    weekly_check_seconds: float = 60.0
    run_weekly: bool = True
    # How long the projector and the sweep reuse a tenant's typical repeat interval and
    # lapse model (read from every order) before reading them again (decision 0056).
    churn_context_seconds: float = 300.0
