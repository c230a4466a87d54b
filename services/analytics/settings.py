"""The analytics service's settings: the shared ones plus what only analytics needs."""

from __future__ import annotations

from typing import ClassVar

from libs.platform.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: ClassVar[str] = "analytics"

    http_port: int = 8007
    # False serves the API only: another process keeps the tables.
    run_projector: bool = True
    # How often every segment is evaluated again as of now (customers become "lost"
    # with time alone) and entries and exits are announced.
    segment_sweep_seconds: float = 300.0
    run_sweep: bool = True
    # How soon a swap made by a rebuild is noticed by the projector.
    generation_check_seconds: float = 1.0
