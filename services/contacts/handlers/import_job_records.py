"""An import job as this service keeps it: its row in ``contacts_import_jobs`` (the
file until the job ends, the checkpoint, the report so far), what a caller sees of it,
the submission it was made from with that submission's fingerprint, and the errors
of asking for one."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Column, Integer, LargeBinary, MetaData, String, Table, Text, UniqueConstraint

from libs.events.catalog.contacts import CustomerKind
from libs.platform.db import JsonDocument, UtcDateTime
from libs.platform.errors import Conflict, NotFound

JobStatus = Literal["queued", "running", "succeeded", "failed"]


metadata = MetaData()

import_jobs = Table(
    "contacts_import_jobs",
    metadata,
    Column("job_id", String(36), primary_key=True),
    Column("tenant_id", String(64), nullable=False),
    # sha256 of the Idempotency-Key, or of the submission itself when there is none.
    Column("request_key", String(80), nullable=False),
    Column("submission_sha256", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("submitted_by", String(64), nullable=False),
    Column("submitted_at", UtcDateTime, nullable=False),
    Column("started_at", UtcDateTime),
    Column("finished_at", UtcDateTime),
    Column("heartbeat_at", UtcDateTime),
    Column("attempts", Integer, nullable=False, default=0),
    Column("file", LargeBinary),  # cleared when the job ends
    Column("options", JsonDocument, nullable=False),  # mapping, kind, timezone
    Column("rows_total", Integer, nullable=False),
    Column("rows_done", Integer, nullable=False, default=0),
    Column("after_row", Integer, nullable=False, default=1),  # checkpoint (file row)
    Column("report", JsonDocument),  # so far while running; whole when succeeded
    Column("failure", Text),
    UniqueConstraint("tenant_id", "request_key", name="uq_contacts_import_jobs_request"),
)


@dataclass(frozen=True)
class Submission:
    """What a caller asked to import, as the request carried it."""

    content: bytes
    mapping: str | None
    kind: CustomerKind
    timezone: str

    def options(self) -> dict[str, Any]:
        return {"mapping": self.mapping, "kind": self.kind, "timezone": self.timezone}

    def fingerprint(self) -> str:
        """Same file and options, same fingerprint (a mapping's spacing and key order
        do not matter: it was checked to be a JSON object already)."""
        mapping = None
        if self.mapping is not None and self.mapping.strip():
            mapping = json.dumps(json.loads(self.mapping), sort_keys=True, ensure_ascii=False)
        options = json.dumps([mapping, self.kind, self.timezone.strip()], ensure_ascii=False)
        digest = hashlib.sha256(options.encode())
        digest.update(b"\x00")
        digest.update(self.content)
        return digest.hexdigest()


@dataclass(frozen=True)
class ImportJob:
    job_id: str
    tenant_id: str
    status: JobStatus
    submitted_by: str
    submitted_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    rows_total: int
    rows_done: int
    report: dict[str, Any] | None
    failure: str | None

    @property
    def done(self) -> bool:
        return self.status in ("succeeded", "failed")


VIEW_COLUMNS = (
    import_jobs.c.job_id,
    import_jobs.c.tenant_id,
    import_jobs.c.status,
    import_jobs.c.submitted_by,
    import_jobs.c.submitted_at,
    import_jobs.c.started_at,
    import_jobs.c.finished_at,
    import_jobs.c.rows_total,
    import_jobs.c.rows_done,
    import_jobs.c.report,
    import_jobs.c.failure,
)


class ImportJobNotFound(NotFound):
    pass


class IdempotencyKeyReused(Conflict):
    pass
