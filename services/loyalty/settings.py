"""The loyalty service's settings: the shared ones plus what only loyalty needs."""

from __future__ import annotations

from typing import ClassVar

from libs.platform.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: ClassVar[str] = "loyalty"

    http_port: int = 8004
    # False serves the API only: another process reacts to orders and sweeps expiry.
    run_reactions: bool = True
    # How often lots past their expiry are looked for (they cannot be spent meanwhile).
    expiry_sweep_seconds: float = 60.0
    # Ledgers expired per sweep transaction batch.
    expiry_sweep_batch: int = 500
