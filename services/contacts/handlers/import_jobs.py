"""Customer imports as jobs: submitted in one request, run in the background, polled.

A 50,000-row file takes longer than any HTTP client, proxy or gateway waits, so the
request only stores the file and answers 202 with the job's address; the service's
own runner does the import and keeps the job's progress and report in
``contacts_import_jobs``, the service's database (docs/decisions/0015).

* One request, one job: a retry of the same submission (same file, mapping, kind
  and time zone, or the same ``Idempotency-Key``) finds the job it created.
* A job survives a restart: a runner that stops asks the import to stop at a
  batch boundary and puts the job back in the queue; one that died is noticed by
  its stale heartbeat. Each batch commits with the job's checkpoint, so a job
  picked up again starts after the last batch written, with the report so far.
* The file is kept only until the job ends: it holds personal data.

Here: submitting, reading, and the runner. What a job is and how its row keeps it is
in ``import_job_records``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
import uuid
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy import and_, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.contacts.handlers import import_file, importer
from services.contacts.handlers.customers import Contacts
from services.contacts.handlers.import_job_records import (
    VIEW_COLUMNS,
    IdempotencyKeyReused,
    ImportJob,
    ImportJobNotFound,
    Submission,
    import_jobs,
)

# structlog, like every other line of the platform: the stdlib logger's info lines were
# never written (the root logger stays at WARNING), so an import showed no progress.
log = structlog.get_logger("crm.contacts.imports")
# A progress line at most this often per job: a 100,000-row import writes a few dozen.
PROGRESS_EVERY_SECONDS = 5.0

# A job that failed this many times for reasons of ours (not its file) stays failed.
MAX_ATTEMPTS = 3


class ImportJobs:
    """The jobs of this service's database, and the runner that works through them."""

    def __init__(
        self,
        contacts: Contacts,
        *,
        poll_seconds: float = 2.0,
        stale_after_seconds: float = 60.0,
    ) -> None:
        self.contacts = contacts
        self.poll_seconds = poll_seconds
        self.stale_after = timedelta(seconds=stale_after_seconds)
        self._wake = asyncio.Event()

    @property
    def engine(self) -> AsyncEngine:
        return self.contacts.engine

    # --- the API's side ---------------------------------------------------------------

    async def submit(
        self,
        tenant_id: str,
        submission: Submission,
        *,
        by: str,
        idempotency_key: str | None = None,
    ) -> ImportJob:
        """The job for this submission: a new one, or the one an earlier try created.

        What would stop the import before its first row (encoding, header, mapping,
        time zone) is a 422 here, not a failed job.
        """
        rows_total = await asyncio.to_thread(
            import_file.inspect_file, submission.content, submission.mapping, submission.timezone
        )
        fingerprint = submission.fingerprint()
        if idempotency_key is not None:
            key = "key:" + hashlib.sha256(idempotency_key.encode()).hexdigest()
        else:
            key = "file:" + fingerprint
        earlier = await self._by_request(tenant_id, key)
        if earlier is None:
            job_id = str(uuid.uuid4())
            try:
                async with self.engine.begin() as conn:
                    await conn.execute(
                        insert(import_jobs).values(
                            job_id=job_id,
                            tenant_id=tenant_id,
                            request_key=key,
                            submission_sha256=fingerprint,
                            status="queued",
                            submitted_by=by,
                            submitted_at=self.contacts.clock(),
                            attempts=0,
                            file=submission.content,
                            options=submission.options(),
                            rows_total=rows_total,
                            rows_done=0,
                            after_row=1,
                        )
                    )
            except IntegrityError:
                earlier = await self._by_request(tenant_id, key)  # a concurrent retry won
                if earlier is None:
                    raise
            else:
                self._wake.set()
                return await self.get(tenant_id, job_id)
        job, earlier_fingerprint = earlier
        if earlier_fingerprint != fingerprint:
            raise IdempotencyKeyReused(
                "this Idempotency-Key was used for another import", job_id=job.job_id
            )
        return job

    async def get(self, tenant_id: str, job_id: str) -> ImportJob:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(*VIEW_COLUMNS).where(
                        import_jobs.c.tenant_id == tenant_id, import_jobs.c.job_id == job_id
                    )
                )
            ).one_or_none()
        if row is None:
            raise ImportJobNotFound(f"import {job_id} not found")
        return ImportJob(**row._mapping)

    async def _by_request(self, tenant_id: str, key: str) -> tuple[ImportJob, str] | None:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(*VIEW_COLUMNS, import_jobs.c.submission_sha256).where(
                        import_jobs.c.tenant_id == tenant_id, import_jobs.c.request_key == key
                    )
                )
            ).one_or_none()
        if row is None:
            return None
        fields = dict(row._mapping)
        fingerprint = fields.pop("submission_sha256")
        return ImportJob(**fields), fingerprint

    # --- the runner -------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Run jobs one at a time until ``stop``: one import at a time leaves the
        database and the event loop to interactive requests."""
        while not stop.is_set():
            self._wake.clear()  # before looking: a submission from now on wakes the wait
            try:
                job_id = await self._claim_next()
                # After a failure, a pause: a database that is away needs more than a retry.
                if job_id is not None and await self._run(job_id, stop):
                    continue
            except Exception:
                log.exception("import runner failed; carrying on")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_seconds):
                    await _first_of(self._wake, stop)

    async def _claim_next(self) -> str | None:
        """The oldest job waiting (or left running by a runner that died), now ours."""
        now = self.contacts.clock()
        claimable = or_(
            import_jobs.c.status == "queued",
            and_(
                import_jobs.c.status == "running",
                import_jobs.c.heartbeat_at < now - self.stale_after,
            ),
        )
        async with self.engine.begin() as conn:
            candidates = (
                (
                    await conn.execute(
                        select(import_jobs.c.job_id)
                        .where(claimable)
                        .order_by(import_jobs.c.submitted_at)
                        .limit(5)
                    )
                )
                .scalars()
                .all()
            )
            for job_id in candidates:
                # Claimed only if still claimable: two runners never take one job.
                claimed = await conn.execute(
                    update(import_jobs)
                    .where(import_jobs.c.job_id == job_id, claimable)
                    .values(
                        status="running",
                        heartbeat_at=now,
                        attempts=import_jobs.c.attempts + 1,
                    )
                )
                if claimed.rowcount == 1:
                    await conn.execute(
                        update(import_jobs)
                        .where(import_jobs.c.job_id == job_id, import_jobs.c.started_at.is_(None))
                        .values(started_at=now)
                    )
                    return str(job_id)
        return None

    async def _run(self, job_id: str, stop: asyncio.Event) -> bool:
        """Run the job to its end, or until stopped; False when it failed."""
        async with self.engine.connect() as conn:
            job = (
                await conn.execute(select(import_jobs).where(import_jobs.c.job_id == job_id))
            ).one()
        checkpoint = None
        if job.report is not None:
            checkpoint = importer.Checkpoint(
                job.after_row, importer.ImportReport.of_json(job.report)
            )
        options = job.options
        log.info(
            "import_started",
            job_id=job_id,
            tenant_id=job.tenant_id,
            rows_total=job.rows_total,
            after_row=job.after_row,
        )
        try:
            report = await importer.import_customers(
                self.contacts,
                job.tenant_id,
                job.file,
                by=job.submitted_by,
                mapping=options["mapping"],
                default_kind=options["kind"],
                timezone=options["timezone"],
                import_id=job_id,
                resume=checkpoint,
                on_batch=self._checkpoint(job_id, job.rows_total),
                should_stop=stop.is_set,
            )
        except importer.ImportInterrupted:
            await self._set(job_id, status="queued", heartbeat_at=None)
            log.info("import_interrupted", job_id=job_id, queued_again=True)
            return True
        except Exception as failed:
            log.exception("import_failed", job_id=job_id, attempt=job.attempts)
            if job.attempts < MAX_ATTEMPTS:
                await self._set(job_id, status="queued", heartbeat_at=None)
            else:
                await self._set(
                    job_id,
                    status="failed",
                    failure=f"the import stopped {job.attempts} times ({type(failed).__name__})",
                    finished_at=self.contacts.clock(),
                    file=None,
                )
            return False
        await self._set(
            job_id,
            status="succeeded",
            report=report.as_json(),
            rows_done=report.rows,
            finished_at=self.contacts.clock(),
            file=None,
        )
        log.info(
            "import_succeeded",
            job_id=job_id,
            rows=report.rows,
            created=report.created,
            duplicates=len(report.duplicates),
            refused_rows=len({error["row"] for error in report.errors}),
        )
        return True

    def _checkpoint(self, job_id: str, rows_total: int) -> importer.OnBatch:
        last_said = time.monotonic()

        async def record(conn: AsyncConnection, report: importer.ImportReport, row: int) -> None:
            nonlocal last_said
            if time.monotonic() - last_said >= PROGRESS_EVERY_SECONDS:
                last_said = time.monotonic()
                log.info(
                    "import_progress",
                    job_id=job_id,
                    rows_done=report.rows,
                    rows_total=rows_total,
                    created=report.created,
                    refused_rows=len({error["row"] for error in report.errors}),
                )
            # In the batch's own transaction: the checkpoint holds exactly what was written.
            await conn.execute(
                update(import_jobs)
                .where(import_jobs.c.job_id == job_id)
                .values(
                    report=report.as_json(),
                    rows_done=report.rows,
                    after_row=row,
                    heartbeat_at=self.contacts.clock(),
                )
            )

        return record

    async def _set(self, job_id: str, **values: Any) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                update(import_jobs).where(import_jobs.c.job_id == job_id).values(**values)
            )


async def _first_of(*events: asyncio.Event) -> None:
    waits = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()
