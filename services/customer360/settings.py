"""The customer 360 projector's settings: the shared ones plus how it serves reads."""

from __future__ import annotations

from typing import ClassVar

from libs.platform.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: ClassVar[str] = "customer360"
    http_port: int = 8006

    # False runs a read-only replica: it serves the tables another process projects.
    run_projector: bool = True
    # How often the lag reported with every view (events, seconds) is refreshed;
    # asking the broker for end offsets on every read would cost more than the read.
    lag_refresh_seconds: float = 2.0
    # How soon a swap made by a rebuild is noticed, by the projector and by readers.
    generation_check_seconds: float = 1.0
