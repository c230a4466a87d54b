"""The contacts service's settings: the shared ones plus what only contacts needs."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, field_validator

from libs.platform.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: ClassVar[str] = "contacts"

    http_port: int = 8001
    # Region a phone number without +country code is read in (PHONE_DEFAULT_REGION).
    phone_default_region: str = "CN"
    # A 100,000-row CSV migration is 10-20 MB: imports must fit in one request.
    max_request_body_bytes: int = 64 * 1024 * 1024
    # Rows written per transaction by an import: big enough to amortise round trips,
    # small enough that registrations of the tenant wait only briefly behind one (its
    # lock is held for the batch: 500 rows are a few hundred ms; docs/decisions/0015).
    import_batch_size: int = 500
    # Whether this process runs import jobs (all processes take submissions; a fleet
    # may leave the running to a few). Jobs wait in the database until one does.
    import_jobs_run: bool = True
    # How often an idle runner looks for jobs submitted to another process.
    import_jobs_poll_seconds: float = Field(default=2.0, gt=0)
    # A running job whose runner has not reported for this long is taken over:
    # that runner died. Well above the time one batch takes.
    import_jobs_stale_seconds: float = Field(default=60.0, gt=0)

    @field_validator("phone_default_region")
    @classmethod
    def _known_region(cls, value: str) -> str:
        import phonenumbers

        region = value.strip().upper()
        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"{value!r} is not a region phonenumbers knows (e.g. CN, GB, US)")
        return region
