"""The tickets service's settings: the shared ones plus what only tickets needs."""

from __future__ import annotations

from typing import ClassVar

from libs.platform.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: ClassVar[str] = "tickets"

    http_port: int = 8003
    # Where contacts answers GET /api/v1/customers/{id} (CONTACTS_URL), for customers
    # registered too recently to have reached this service through Kafka yet.
    contacts_url: str = "http://127.0.0.1:8001"
    # How often the SLA scheduler looks for due breaches: the most a breach is late by.
    sla_check_seconds: float = 1.0
    # Off in processes that only serve reads (one scheduler per database is enough,
    # though two would still record each breach once).
    run_sla_scheduler: bool = True
    run_customer_projection: bool = True
