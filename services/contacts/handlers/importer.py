"""CSV import: bring a spreadsheet of customers in without losing or doubling anyone.

* Encoding: UTF-8 with or without BOM, UTF-16 with BOM, else GBK (read as GB18030,
  its superset), which is what Excel on a Chinese Windows saves.
* Mapping: ``{"name": "客户名称", "email": "邮箱", "attributes.vip_level": "等级"}``,
  platform field -> column header; fields left out map to a column of their own
  name if there is one. ``kind`` defaults to the form's ``kind`` (person).
* Every row becomes the same ``RegisterCustomer`` command the API takes, decided
  by the same domain rules, so a row is refused for exactly the reasons a request
  would be; a refused row is reported (row number as a spreadsheet shows it: the
  header is row 1) and the others go on.
* Duplicates: rows whose normalised email or phone matches an existing customer or
  an earlier row of the file are reported, not created.
* Re-runs: a row's customer id is derived from the tenant and the row's content,
  so importing the same file again finds every row already there and creates
  nothing; rows that changed are still caught by their email or phone.
* Throughput: rows are validated in memory and written ``import_batch_size`` at a
  time, each batch one transaction of a few bulk statements (events, outbox,
  keys, read model), so 100,000 rows take seconds of database time, not hours.
* Manners: an import runs beside interactive requests in the same process, so it
  hands the event loop back every ``YIELD_EVERY`` rows and between batches.
* Resuming: ``on_batch`` sees each batch's transaction, the report so far and the
  last row done, so a caller can keep a checkpoint that commits with the rows; an
  import started again from that checkpoint skips the rows before it.

Here: the run (batches, duplicates, checkpoints). What the file holds and how its
columns map to fields is in ``import_file``; how a row becomes a command, in
``import_rows``.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast
from zoneinfo import ZoneInfo

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from libs.events.catalog import DomainEvent
from libs.events.catalog.contacts import CustomerKind
from libs.events.store import StreamAppend
from libs.events.write_path import new_events
from libs.platform.spreadsheets import import_zone
from services.contacts.commands import RegisterCustomer
from services.contacts.domain import (
    ContactsError,
    Customer,
    CustomFieldDefinition,
    decide,
)
from services.contacts.handlers.customers import (
    Contacts,
    evolved,
    load_custom_fields,
    load_customer,
)
from services.contacts.handlers.import_file import counts_as_row, read_header
from services.contacts.handlers.import_rows import (
    RowRefused,
    command_data,
    domain_issue,
    row_identity,
    validation_issues,
)
from services.contacts.read_model import customer_list, planner, write_locks
from services.contacts.read_model.customer_list import Identity

# Rows validated between two turns of the event loop: a few tenths of a millisecond
# of CPU each, so a request of the same process waits a few milliseconds per await.
YIELD_EVERY = 10


@dataclass
class Candidate:
    """A row that passed validation, waiting for its batch."""

    row: int
    command: RegisterCustomer
    identities: list[Identity]


@dataclass
class ImportReport:
    import_id: str
    rows: int = 0
    created: int = 0
    duplicates: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)

    def refuse(self, row: int, issues: list[tuple[str, str]]) -> None:
        self.errors += [{"row": row, "field": f, "reason": r} for f, r in issues]

    def as_json(self) -> dict[str, Any]:
        return {
            "import_id": self.import_id,
            "rows": self.rows,
            "created": self.created,
            "duplicates": self.duplicates,
            "errors": sorted(self.errors, key=lambda e: cast(int, e["row"])),
        }

    @classmethod
    def of_json(cls, saved: Mapping[str, Any]) -> ImportReport:
        return cls(
            import_id=saved["import_id"],
            rows=saved["rows"],
            created=saved["created"],
            duplicates=list(saved["duplicates"]),
            errors=list(saved["errors"]),
        )


@dataclass(frozen=True)
class Checkpoint:
    """Where an interrupted import stands: its report up to ``after_row`` (a file row
    number, header = 1), every row up to which is written or refused."""

    after_row: int
    report: ImportReport


# Called inside each batch's transaction with the report so far and the last row done.
OnBatch = Callable[[AsyncConnection, ImportReport, int], Awaitable[None]]


class ImportInterrupted(Exception):
    """The import stopped at a batch boundary because it was asked to (shutdown)."""


@dataclass
class _Seen:
    """What earlier rows of this file became, for duplicates within the file."""

    ids: dict[str, int] = field(default_factory=dict)  # customer id -> first row
    identities: dict[Identity, tuple[str, int]] = field(default_factory=dict)


async def import_customers(
    contacts: Contacts,
    tenant_id: str,
    content: bytes,
    *,
    by: str,
    mapping: str | None = None,
    default_kind: CustomerKind = "person",
    timezone: str = "UTC",
    import_id: str | None = None,
    resume: Checkpoint | None = None,
    on_batch: OnBatch | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> ImportReport:
    started_at = contacts.clock()
    tz = import_zone(timezone)
    records, columns = read_header(content, mapping)

    async with contacts.engine.connect() as conn:
        definitions, _ = await load_custom_fields(contacts, conn, tenant_id)
    if resume is not None:
        report = resume.report
        after_row = resume.after_row
    else:
        report = ImportReport(import_id=import_id or str(uuid.uuid4()))
        after_row = 1
    seen = _Seen()
    companies: dict[str, Customer | None] = {}
    batch: list[Candidate] = []

    async def write(last_row: int) -> None:
        await _write_batch(
            contacts, tenant_id, batch, definitions, companies, seen, report,
            last_row=last_row, on_batch=on_batch,
        )

    row = after_row
    for row, record in records:
        if row <= after_row:
            continue  # done before an interruption: written, refused and reported
        if row % YIELD_EVERY == 0:
            await asyncio.sleep(0)
        if not counts_as_row(record):
            continue
        report.rows += 1
        candidate = _candidate(
            contacts, tenant_id, row, record, columns, report, default_kind=default_kind, tz=tz
        )
        if candidate is None:
            continue  # refused, and reported
        batch.append(candidate)
        if len(batch) >= contacts.import_batch_size:
            await write(row)
            batch = []
            await asyncio.sleep(0)
            if should_stop():
                raise ImportInterrupted(report.import_id)
    if batch:
        await write(row)

    if report.created:
        await planner.refresh_statistics(contacts.engine)
    await _record_run(
        contacts, tenant_id, content, report,
        by=by, started_at=started_at, resumed=resume is not None,
    )
    return report


def _candidate(
    contacts: Contacts,
    tenant_id: str,
    row: int,
    record: list[str] | csv.Error,
    columns: Mapping[str, int],
    report: ImportReport,
    *,
    default_kind: CustomerKind,
    tz: ZoneInfo,
) -> Candidate | None:
    """The row's registration, waiting for its batch; None when the row is refused (the
    report says why)."""
    if isinstance(record, csv.Error):
        report.refuse(row, [("row", f"is not valid CSV: {record}")])
        return None
    cells = {
        target: record[index].strip() if index < len(record) else ""
        for target, index in columns.items()
    }
    try:
        data = command_data(cells, default_kind=default_kind, tz=tz)
        command = RegisterCustomer.model_validate(
            {**data, "customer_id": "pending", "tenant_id": tenant_id},
            context={"phone_region": contacts.phone_region},
        )
    except RowRefused as refused:
        report.refuse(row, refused.issues)
        return None
    except ValidationError as exc:
        report.refuse(row, validation_issues(exc))
        return None
    command = command.model_copy(update={"customer_id": row_identity(tenant_id, command)})
    return Candidate(row, command, customer_list.identities_of(command.email, command.phone))


async def _record_run(
    contacts: Contacts,
    tenant_id: str,
    content: bytes,
    report: ImportReport,
    *,
    by: str,
    started_at: datetime,
    resumed: bool,
) -> None:
    """The run in ``contacts_import_runs`` (counts only), once: a resumed import may
    have recorded it already."""
    async with contacts.engine.begin() as conn:
        if resumed and await _recorded(conn, report.import_id):
            return  # stopped between recording the run and saying it was done
        await customer_list.record_import_run(
            conn,
            {
                "import_id": report.import_id,
                "tenant_id": tenant_id,
                "by": by,
                "file_sha256": hashlib.sha256(content).hexdigest(),
                "started_at": started_at,
                "finished_at": contacts.clock(),
                "rows": report.rows,
                "created": report.created,
                "duplicates": len(report.duplicates),
                "errors": len(report.errors),
            },
        )


async def _recorded(conn: AsyncConnection, import_id: str) -> bool:
    runs = customer_list.import_runs
    found = await conn.scalar(select(runs.c.import_id).where(runs.c.import_id == import_id))
    return found is not None


async def _write_batch(
    contacts: Contacts,
    tenant_id: str,
    batch: list[Candidate],
    definitions: Mapping[str, CustomFieldDefinition],
    companies: dict[str, Customer | None],
    seen: _Seen,
    report: ImportReport,
    *,
    last_row: int,
    on_batch: OnBatch | None,
) -> None:
    """Decide and write one batch in one transaction; rows are judged in file order."""
    now = contacts.clock()
    appends: list[StreamAppend] = []
    registered: list[Customer] = []
    async with contacts.engine.begin() as conn:
        # Registrations of the tenant wait for this batch; the batch sees all of theirs.
        await write_locks.lock_tenant(conn, tenant_id)
        await planner.plan_each_bulk_query(conn)
        ids = [c.command.customer_id for c in batch]
        already = await customer_list.existing_ids(conn, tenant_id, ids)
        holders = await customer_list.identity_holders(
            conn, tenant_id, [i for c in batch for i in c.identities]
        )
        for company_id in {c.command.company_id for c in batch} - companies.keys():
            if company_id is not None:
                companies[company_id] = await load_customer(contacts, conn, tenant_id, company_id)
        for candidate in batch:
            events = _judge(candidate, already, holders, seen, report, definitions, companies, now)
            if events is None:
                continue
            customer_id = candidate.command.customer_id
            appends.append(StreamAppend(customer_id, 0, new_events(events, customer_id, now)))
            registered.append(evolved(None, events))
        if appends:
            await contacts.store.append_many(tenant_id, appends, conn=conn)
            await customer_list.insert_customers(conn, registered)
        report.created += len(appends)
        if on_batch is not None:
            await on_batch(conn, report, last_row)
    contacts.appended(sum(len(a.events) for a in appends))


def _judge(
    candidate: Candidate,
    already: set[str],
    holders: Mapping[Identity, str],
    seen: _Seen,
    report: ImportReport,
    definitions: Mapping[str, CustomFieldDefinition],
    companies: Mapping[str, Customer | None],
    now: datetime,
) -> list[DomainEvent] | None:
    """The events registering this row causes, or None (reported as duplicate or error)."""
    row, command = candidate.row, candidate.command
    customer_id = command.customer_id

    def duplicate(existing_id: str, field: str | None, reason: str, **more: Any) -> None:
        report.duplicates.append(
            {"row": row, "existing_id": existing_id, "field": field, "reason": reason, **more}
        )
        # Later rows with the same email or phone are duplicates of the same customer.
        for identity in candidate.identities:
            seen.identities.setdefault(identity, (existing_id, row))

    if customer_id in already:
        duplicate(customer_id, None, "already imported")
        return None
    if customer_id in seen.ids:
        first = seen.ids[customer_id]
        duplicate(customer_id, None, f"same as row {first}", duplicate_of_row=first)
        return None
    for identity in candidate.identities:
        if identity in seen.identities:
            existing_id, first = seen.identities[identity]
            duplicate(
                existing_id, identity[0], f"same {identity[0]} as row {first}",
                duplicate_of_row=first,
            )
            return None
    for identity in candidate.identities:
        if identity in holders:
            duplicate(holders[identity], identity[0], f"same {identity[0]} as an existing customer")
            return None
    try:
        events = decide(command, None, now, definitions=definitions, others=companies)
    except ContactsError as refused:
        report.refuse(row, [domain_issue(refused)])
        return None
    seen.ids[customer_id] = row
    for identity in candidate.identities:
        seen.identities[identity] = (customer_id, row)
    return events
