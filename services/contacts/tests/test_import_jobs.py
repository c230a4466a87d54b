"""An import is a job: 202 and its address, progress while it runs, the report when it
is done, the same job for a retry, only for its tenant, and it outlives a restart."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select, update

from libs.events.store import events
from libs.platform.app import configure_logging
from libs.platform.db import create_engine
from services.contacts.app import create_app
from services.contacts.handlers.import_job_records import import_jobs
from services.contacts.settings import Settings
from services.contacts.tests.conftest import Api, eventually
from services.contacts.tests.test_import import count_events, finished, upload

JOBS = "/api/v1/customers/imports"


def people(count: int, *, start: int = 0) -> bytes:
    lines = ["name,email"] + [f"客户{i},c{i}@example.com" for i in range(start, start + count)]
    return ("\n".join(lines) + "\n").encode()


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[Api]:
    """The contacts app started (its lifespan run), and a client of it."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://contacts") as client:
            yield Api(client, settings)


async def job_row(settings: Settings, job_id: str) -> Any:
    engine = create_engine(settings.database_url)
    try:
        async with engine.connect() as conn:
            return (
                await conn.execute(select(import_jobs).where(import_jobs.c.job_id == job_id))
            ).one()
    finally:
        await engine.dispose()


async def registrations(settings: Settings) -> int:
    engine = create_engine(settings.database_url)
    try:
        async with engine.connect() as conn:
            count = await conn.scalar(
                select(func.count())
                .select_from(events)
                .where(events.c.type == "crm.contacts.customer_registered.v1")
            )
            return int(count or 0)
    finally:
        await engine.dispose()


async def test_a_submission_is_202_with_the_jobs_address_and_the_job_reaches_its_report(
    api: Api,
) -> None:
    submitted = await api.client.post(
        JOBS,
        files={"file": ("c.csv", people(30) + b"bad,not-an-email\n", "text/csv")},
        headers=api.auth(roles=("integration",)),
    )

    assert submitted.status_code == 202, submitted.text
    location = submitted.headers["Location"]
    job_id = submitted.json()["id"]
    assert location == f"{JOBS}/{job_id}"
    assert submitted.json()["status"] in ("queued", "running", "succeeded")
    assert submitted.json()["progress"]["rows_total"] == 31
    job = await finished(api, location)
    assert job["status"] == "succeeded"
    assert job["progress"] == {"rows_done": 31, "rows_total": 31}
    assert job["started_at"] is not None and job["finished_at"] is not None
    assert job["failure"] is None
    report = job["report"]
    assert report["import_id"] == job_id
    assert (report["rows"], report["created"]) == (31, 30)
    assert report["errors"] == [
        {"row": 32, "field": "email", "reason": report["errors"][0]["reason"]}
    ]
    # The job's file is personal data: kept only while the job needs it.
    assert (await job_row(api.settings, job_id)).file is None


async def test_a_retry_of_the_same_submission_finds_the_same_job(api: Api) -> None:
    content = people(20)

    first = await upload(api, content, mapping={"name": "name", "email": "email"})
    job = await finished(api, first.headers["Location"])
    events_after_first = await count_events(api)
    # Sent again (say the 202 was lost), once done, the form's JSON in another order.
    again = await upload(api, content, mapping={"email": "email", "name": "name"})

    assert again.status_code == 202
    assert again.headers["Location"] == first.headers["Location"]
    assert again.json()["report"] == job["report"]
    assert await count_events(api) == events_after_first


async def test_an_idempotency_key_finds_its_job_and_refuses_another_file(api: Api) -> None:
    key = {"Idempotency-Key": "erp-sync-2026-11-30"}

    first = await upload(api, people(5), mapping=None, headers=key)
    same = await upload(api, people(5), mapping=None, headers=key)
    other_file = await upload(api, people(5, start=100), mapping=None, headers=key)
    other_tenant = await upload(api, people(5), mapping=None, headers=key, tenant="globex")

    assert same.headers["Location"] == first.headers["Location"]
    assert other_file.status_code == 409
    assert other_file.json()["job_id"] == first.json()["id"]
    assert other_tenant.status_code == 202
    assert other_tenant.headers["Location"] != first.headers["Location"]


async def test_a_job_is_its_tenants_alone_and_needs_the_import_permission(api: Api) -> None:
    submitted = await upload(api, people(3), mapping=None)
    location = submitted.headers["Location"]

    theirs = await api.client.get(location, headers=api.auth("globex", ("admin",)))
    sales = await api.client.get(location, headers=api.auth("acme", ("sales",)))
    unknown = await api.client.get(
        f"{JOBS}/{'0' * 8}-0000-0000-0000-{'0' * 12}", headers=api.auth()
    )
    not_an_id = await api.client.get(f"{JOBS}/x'", headers=api.auth())

    assert theirs.status_code == 404
    assert sales.status_code == 403
    assert unknown.status_code == 404
    assert not_an_id.status_code in (404, 422)


async def test_a_job_queued_when_the_service_stops_is_run_by_the_next_process(
    settings: Settings,
) -> None:
    # A process that takes submissions but runs no jobs: the job waits in the database.
    async with running(settings.model_copy(update={"import_jobs_run": False})) as first:
        submitted = await upload(first, people(40), mapping=None)
        assert submitted.json()["status"] == "queued"
    assert (await job_row(settings, submitted.json()["id"])).status == "queued"

    async with running(settings) as second:
        job = await finished(second, submitted.headers["Location"])

    assert job["status"] == "succeeded"
    assert job["report"]["created"] == 40


async def test_a_job_stopped_half_way_resumes_after_its_last_batch_with_the_same_report(
    settings: Settings,
) -> None:
    small_batches = settings.model_copy(update={"import_batch_size": 50})
    rows = 3_000
    async with running(small_batches) as first:
        submitted = await upload(first, people(rows), mapping=None)
        job_id = submitted.json()["id"]

        jobs = create_engine(settings.database_url)
        try:

            async def under_way() -> bool:
                async with jobs.connect() as conn:
                    done = await conn.scalar(
                        select(import_jobs.c.rows_done).where(import_jobs.c.job_id == job_id)
                    )
                return bool(done)

            # The first batch of 60 is written: stop now, half way.
            await eventually(under_way, every=0.002)
        finally:
            await jobs.dispose()
    # Stopping asked the import to stop after its batch and queued the job again.
    stopped = await job_row(settings, job_id)
    assert stopped.status == "queued"
    assert 0 < stopped.rows_done < rows
    assert stopped.report["created"] == stopped.rows_done

    async with running(small_batches) as second:
        job = await finished(second, submitted.headers["Location"])

    assert job["status"] == "succeeded"
    report = job["report"]
    # As if it had never stopped: every row created once, none reported a duplicate.
    assert (report["rows"], report["created"], report["duplicates"]) == (rows, rows, [])
    assert await registrations(settings) == rows


async def test_a_job_left_running_by_a_process_that_died_is_taken_over(
    settings: Settings,
) -> None:
    async with running(settings.model_copy(update={"import_jobs_run": False})) as first:
        submitted = await upload(first, people(10), mapping=None)
    engine = create_engine(settings.database_url)
    try:
        async with engine.begin() as conn:
            # What a process killed mid-import leaves: running, and silent since.
            await conn.execute(
                update(import_jobs).values(
                    status="running", heartbeat_at=datetime.now(UTC) - timedelta(minutes=5)
                )
            )
    finally:
        await engine.dispose()

    async with running(settings) as second:
        job = await finished(second, submitted.headers["Location"])

    assert job["status"] == "succeeded"
    assert job["report"]["created"] == 10


async def test_a_job_that_stopped_after_its_last_batch_finishes_with_its_report(
    settings: Settings,
) -> None:
    async with running(settings) as first:
        submitted = await upload(first, people(25) + b"bad,not-an-email\n", mapping=None)
        done = await finished(first, submitted.headers["Location"])
    engine = create_engine(settings.database_url)
    try:
        async with engine.begin() as conn:
            # What a process leaves that died after the import's last write but before
            # it said so: the job still running, its checkpoint at the end of the file.
            await conn.execute(
                update(import_jobs).values(
                    status="running",
                    heartbeat_at=datetime.now(UTC) - timedelta(minutes=5),
                    file=people(25) + b"bad,not-an-email\n",
                )
            )
    finally:
        await engine.dispose()

    async with running(settings) as second:
        again = await finished(second, submitted.headers["Location"])

    assert again["status"] == "succeeded"
    assert again["report"] == done["report"]
    assert await registrations(settings) == 25


def test_the_job_resource_and_its_statuses_are_in_the_openapi_document(
    built_app: FastAPI,
) -> None:
    document = built_app.openapi()

    submit = document["paths"][JOBS]["post"]
    assert "202" in submit["responses"]
    assert "get" in document["paths"][JOBS + "/{job_id}"]
    assert "post" in document["paths"]["/api/v1/customers/import"]
    view = document["components"]["schemas"]["ImportJobView"]
    assert view["properties"]["status"]["enum"] == ["queued", "running", "succeeded", "failed"]
    assert {"progress", "report", "failure"} <= view["properties"].keys()


async def test_an_import_logs_its_start_its_progress_and_its_counts(
    api: Api, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Every batch says its progress here (5 s apart otherwise).
    monkeypatch.setattr("services.contacts.handlers.import_jobs.PROGRESS_EVERY_SECONDS", 0.0)
    configure_logging("INFO")  # these tests run at WARNING
    try:
        capsys.readouterr()
        submitted = await api.client.post(
            JOBS,
            files={"file": ("c.csv", people(30) + b"bad,not-an-email\n", "text/csv")},
            headers=api.auth(roles=("integration",)),
        )
        job = await finished(api, submitted.headers["Location"])
    finally:
        configure_logging(api.settings.log_level)

    assert job["status"] == "succeeded"
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()
             if line.startswith("{")]
    said = {line["event"]: line for line in lines if line["event"].startswith("import_")}
    assert said["import_started"]["rows_total"] == 31
    assert said["import_progress"]["rows_total"] == 31
    succeeded = said["import_succeeded"]
    assert succeeded["level"] == "info" and succeeded["job_id"] == job["id"]
    assert (succeeded["rows"], succeeded["created"]) == (31, 30)
    assert (succeeded["duplicates"], succeeded["refused_rows"]) == (0, 1)
