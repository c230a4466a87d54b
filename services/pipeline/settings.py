"""The pipeline service's settings: the shared ones plus what only the pipeline needs."""

from __future__ import annotations

from typing import ClassVar

from libs.platform.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: ClassVar[str] = "pipeline"

    http_port: int = 8002
    # Where contacts answers (CONTACTS_URL): asked about a customer registered a moment
    # ago whose event has not reached this service yet. Empty: never ask.
    contacts_url: str = "http://127.0.0.1:8001"
    # A 100,000-order CSV backfill is 10-20 MB: imports must fit in one request.
    max_request_body_bytes: int = 64 * 1024 * 1024
    # Orders written per transaction by an import.
    import_batch_size: int = 2000
