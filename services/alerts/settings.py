"""The alerts service's settings: the shared ones plus what only alerts needs."""

from __future__ import annotations

from typing import ClassVar

from libs.platform.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: ClassVar[str] = "alerts"

    http_port: int = 8005
    # False serves the API only: another process keeps the churn facts.
    run_projector: bool = True
    # How often every customer is assessed again as of now (signals that grow with time
    # alone: an order becoming overdue, a contract's end coming near).
    sweep_seconds: float = 3600.0
    run_sweep: bool = True
