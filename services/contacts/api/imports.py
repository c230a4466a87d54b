"""Customer imports over HTTP: submit a CSV file (202 and the job's address), poll the job.

An import is a job (docs/decisions/0015): the submission answers at once with
``202 Accepted`` and ``Location: /api/v1/customers/imports/{id}``; the job shows its
status and progress, and its report once it has succeeded. Submitting the same
file again, or sending the same ``Idempotency-Key``, answers with the same job.
Both need ``customers:import``; another tenant's job is a 404.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Depends, File, Form, Header, Path, Request, Response, UploadFile
from pydantic import BaseModel, Field

from libs.auth import Principal, require
from libs.events.catalog.contacts import CustomerKind
from libs.platform.routing import ServiceRouter
from services.contacts.handlers.import_job_records import ImportJob, JobStatus, Submission
from services.contacts.handlers.import_jobs import ImportJobs

router = ServiceRouter(prefix="/api/v1", tags=["imports"])

IMPORTS_PATH = "/api/v1/customers/imports"
Importer = Annotated[Principal, Depends(require("customers:import"))]
JobId = Annotated[str, Path(pattern=r"^[0-9a-f-]{36}$", description="the import job's id")]


async def jobs_of(request: Request) -> ImportJobs:
    jobs: ImportJobs = request.app.state.import_jobs
    return jobs


JobsDep = Annotated[ImportJobs, Depends(jobs_of)]


class DuplicateRow(BaseModel):
    row: int = Field(description="row number as a spreadsheet shows it (the header is row 1)")
    existing_id: str = Field(description="the customer this row duplicates")
    field: str | None = Field(description="email or phone; null when the whole row matched")
    reason: str
    duplicate_of_row: int | None = Field(
        default=None, description="the earlier row of the same file it repeats"
    )


class RefusedRow(BaseModel):
    row: int
    field: str
    reason: str


class ImportReport(BaseModel):
    import_id: str
    rows: int = Field(description="rows read (blank lines are not rows)")
    created: int
    duplicates: list[DuplicateRow]
    errors: list[RefusedRow]


class ImportProgress(BaseModel):
    rows_done: int
    rows_total: int


class ImportJobView(BaseModel):
    id: str
    status: JobStatus = Field(
        description="queued (waiting for a runner), running, succeeded (the report is "
        "complete) or failed (see failure; rows already written stay written)"
    )
    submitted_by: str
    submitted_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    progress: ImportProgress
    report: ImportReport | None = Field(description="once succeeded: what became of each row")
    failure: str | None = Field(description="once failed: why")

    @classmethod
    def of(cls, job: ImportJob) -> ImportJobView:
        return cls(
            id=job.job_id,
            status=job.status,
            submitted_by=job.submitted_by,
            submitted_at=job.submitted_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            progress=ImportProgress(rows_done=job.rows_done, rows_total=job.rows_total),
            report=(
                ImportReport.model_validate(job.report)
                if job.status == "succeeded" and job.report is not None
                else None
            ),
            failure=job.failure,
        )


def _answer(job: ImportJob, response: Response, *, submitted: bool = False) -> ImportJobView:
    if submitted:
        response.headers["Location"] = f"{IMPORTS_PATH}/{job.job_id}"
    if not job.done:
        response.headers["Retry-After"] = "1"  # when polling is worth it again
    return ImportJobView.of(job)


_SUBMISSION_RESPONSES: dict[int | str, dict[str, str]] = {
    409: {"description": "the Idempotency-Key was used for another import"},
    422: {"description": "the file, the mapping or the time zone cannot be imported"},
}


async def submit_import(
    response: Response,
    file: Annotated[UploadFile, File(description="CSV, UTF-8 (BOM or not) or GBK")],
    principal: Importer,
    jobs: JobsDep,
    mapping: Annotated[
        str | None, Form(description='JSON: platform field -> column, e.g. {"name": "姓名"}')
    ] = None,
    kind: Annotated[CustomerKind, Form(description="for rows without a kind column")] = "person",
    timezone: Annotated[str, Form(description="zone of times written without one")] = "UTC",
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            max_length=255,
            description="the same key finds the same job; without one, the same file and form do",
        ),
    ] = None,
) -> ImportJobView:
    """Import customers from a CSV file, as a job: 202 with ``Location`` of the job,
    whose report (created, duplicates against existing customers and earlier rows,
    errors by row and field) appears when it has succeeded. Submitting the same file
    again answers with the same job; importing it under a new key creates nothing twice."""
    submission = Submission(await file.read(), mapping, kind, timezone)
    job = await jobs.submit(
        principal.tenant_id,
        submission,
        by=principal.subject[:64],
        idempotency_key=idempotency_key,
    )
    return _answer(job, response, submitted=True)


for _path in ("/customers/imports", "/customers/import"):
    router.add_api_route(
        _path,
        submit_import,
        methods=["POST"],
        status_code=202,
        responses=_SUBMISSION_RESPONSES,
        # The first path is the collection; the second is where imports were always sent.
        operation_id="submit_import" if _path.endswith("s") else "submit_import_legacy_path",
        summary="Submit a customer import",
    )


@router.get(
    "/customers/imports/{job_id}",
    responses={404: {"description": "no such import job in the caller's tenant"}},
)
async def get_import(
    job_id: JobId, response: Response, principal: Importer, jobs: JobsDep
) -> ImportJobView:
    """An import job: its status, its progress in rows, and its report once it has succeeded."""
    return _answer(await jobs.get(principal.tenant_id, job_id), response)
