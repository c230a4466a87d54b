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
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import json
import re
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from libs.events.catalog import DomainEvent
from libs.events.catalog.contacts import CustomerKind
from libs.events.store import StreamAppend
from libs.events.write_path import new_events
from libs.platform.errors import Unprocessable
from libs.platform.spreadsheets import decode_spreadsheet
from services.contacts.commands import RegisterCustomer
from services.contacts.domain import (
    ContactsError,
    Customer,
    CustomerNotFound,
    CustomFieldDefinition,
    decide,
)
from services.contacts.handlers.customers import (
    Contacts,
    evolved,
    load_custom_fields,
    load_customer,
)
from services.contacts.read_model import customer_list, planner, write_locks
from services.contacts.read_model.customer_list import Identity

# Fixed forever: ids derived from it must come out the same on every re-run.
IMPORT_NAMESPACE = uuid.UUID("6f1d3c1e-7a51-4c8e-9d0b-2b1e5f0c9a77")

FIELDS = (
    "kind",
    "name",
    "email",
    "phone",
    "birthday",
    "owner_id",
    "tags",
    "company_id",
    "registered_at",
)
ATTRIBUTE_PREFIX = "attributes."
# Exports write "个人"/"公司" as often as person/company.
KIND_WORDS: Mapping[str, CustomerKind] = {
    "person": "person",
    "individual": "person",
    "个人": "person",
    "company": "company",
    "organisation": "company",
    "organization": "company",
    "公司": "company",
    "企业": "company",
}
# Rows validated between two turns of the event loop: a few tenths of a millisecond
# of CPU each, so a request of the same process waits a few milliseconds per await.
YIELD_EVERY = 10
_TAG_SEPARATORS = re.compile(r"[;,|；，、]")
_DAY = re.compile(r"(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})")


# --- the file ------------------------------------------------------------------------


def parse_mapping(raw: str | None, header: Sequence[str]) -> dict[str, int]:
    """Platform field -> column index, from the caller's JSON mapping and the header."""
    given: dict[str, str] = {}
    if raw is not None and raw.strip():
        try:
            loaded = json.loads(raw)
        except ValueError:
            raise Unprocessable("mapping", "is not JSON") from None
        except RecursionError:  # "[[[[..." nested deeper than the parser's stack
            raise Unprocessable("mapping", "is nested too deeply to be a mapping") from None
        if not isinstance(loaded, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in loaded.items()
        ):
            raise Unprocessable("mapping", 'must be an object such as {"name": "Full name"}')
        given = loaded
    columns = {name: i for i, name in reversed(list(enumerate(header)))}
    mapping: dict[str, int] = {}
    for target, column in given.items():
        if target not in FIELDS and not _is_attribute(target):
            raise Unprocessable(f"mapping.{target}", "is not a field customers can be imported to")
        if column.strip() not in columns:
            raise Unprocessable(f"mapping.{target}", f"column {column!r} is not in the file")
        mapping[target] = columns[column.strip()]
    # Columns already named like a field need no mapping.
    for name, index in columns.items():
        if name in FIELDS or _is_attribute(name):
            mapping.setdefault(name, index)
    if "name" not in mapping:
        raise Unprocessable("mapping.name", "no column gives the customer's name")
    return mapping


def _is_attribute(target: str) -> bool:
    return target.startswith(ATTRIBUTE_PREFIX) and len(target) > len(ATTRIBUTE_PREFIX)


def read_header(
    content: bytes, mapping: str | None
) -> tuple[Iterator[tuple[int, list[str] | csv.Error]], dict[str, int]]:
    """The file's records after its header, and the column of each platform field."""
    records = _records(decode_spreadsheet(content))
    header_row = next(records, None)
    if header_row is None or isinstance(header_row[1], csv.Error) or not header_row[1]:
        raise Unprocessable("file", "has no header row")
    header = [name.strip().lstrip("\ufeff") for name in header_row[1]]
    return records, parse_mapping(mapping, header)


def inspect_file(content: bytes, mapping: str | None, timezone: str) -> int:
    """How many rows the import of this file will go through; 422 for what would stop
    it before the first row (encoding, header, mapping, time zone). CPU only."""
    zone(timezone)
    records, _ = read_header(content, mapping)
    return sum(1 for _, record in records if _counts_as_row(record))


def _counts_as_row(record: list[str] | csv.Error) -> bool:
    # Blank lines are spreadsheet padding, not customers; a broken record is a row.
    return isinstance(record, csv.Error) or any(cell.strip() for cell in record)


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a name too long to look up
        raise Unprocessable("timezone", "is not an IANA time zone such as Asia/Shanghai") from None


# --- rows ----------------------------------------------------------------------------


class RowRefused(Exception):
    def __init__(self, issues: list[tuple[str, str]]) -> None:
        super().__init__(issues)
        self.issues = issues


def parse_day(raw: str) -> str:
    match = _DAY.fullmatch(raw.strip())
    if match is None:
        return raw  # the command says why it is not a date
    year, month, day = (int(g) for g in match.groups())
    try:
        return date(year, month, day).isoformat()
    except ValueError:
        return raw


def parse_time(raw: str, tz: ZoneInfo) -> datetime:
    """A registration time as migrations write it; a time without zone is in ``tz``."""
    text = raw.strip()
    day = _DAY.fullmatch(text)
    try:
        if day is not None:
            year, month, dom = (int(g) for g in day.groups())
            at = datetime(year, month, dom)
        else:
            at = datetime.fromisoformat(_DAY.sub(lambda m: parse_day(m.group(0)), text, count=1))
    except ValueError:
        raise RowRefused(
            [("registered_at", "is not a date or time (e.g. 2019-03-01 or 2019-03-01 09:30)")]
        ) from None
    return at if at.tzinfo is not None else at.replace(tzinfo=tz)


def command_data(
    cells: Mapping[str, str], *, default_kind: CustomerKind, tz: ZoneInfo
) -> dict[str, Any]:
    """The RegisterCustomer fields of one row (before validation); blank is absent."""
    data: dict[str, Any] = {}
    attributes: dict[str, str] = {}
    for target, value in cells.items():
        if "\x00" in value:
            raise RowRefused([(target, "contains a NUL character")])
        if not value:
            continue
        if _is_attribute(target):
            attributes[target.removeprefix(ATTRIBUTE_PREFIX)] = value
        elif target == "kind":
            data["kind"] = KIND_WORDS.get(value.lower(), value)
        elif target == "tags":
            data["tags"] = [t for t in (t.strip() for t in _TAG_SEPARATORS.split(value)) if t]
        elif target == "birthday":
            data["birthday"] = parse_day(value)
        elif target == "registered_at":
            data["registered_at"] = parse_time(value, tz)
        else:
            data[target] = value
    data.setdefault("kind", default_kind)
    if attributes:
        data["attributes"] = attributes
    return data


def row_identity(tenant_id: str, command: RegisterCustomer) -> str:
    """The customer id a row always gets: same tenant and content, same id."""
    content = command.model_dump(mode="json", exclude={"customer_id", "tenant_id"})
    canonical = json.dumps([tenant_id, content], sort_keys=True, ensure_ascii=False)
    return str(uuid.uuid5(IMPORT_NAMESPACE, canonical))


def validation_issues(exc: ValidationError) -> list[tuple[str, str]]:
    return [
        (
            ".".join(str(p) for p in error["loc"]) or "row",
            str(error["msg"]).removeprefix("Value error, "),
        )
        for error in exc.errors()
    ]


def domain_issue(exc: ContactsError) -> tuple[str, str]:
    if isinstance(exc, Unprocessable):
        return exc.field, exc.reason
    if isinstance(exc, CustomerNotFound):
        return "company_id", exc.detail
    return "row", exc.detail


# --- the run -------------------------------------------------------------------------


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


def _records(text: str) -> Iterator[tuple[int, list[str] | csv.Error]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    row = 0
    while True:
        row += 1
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield row, exc
            continue
        yield row, record


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
    tz = zone(timezone)
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
        if not _counts_as_row(record):
            continue
        report.rows += 1
        if isinstance(record, csv.Error):
            report.refuse(row, [("row", f"is not valid CSV: {record}")])
            continue
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
            continue
        except ValidationError as exc:
            report.refuse(row, validation_issues(exc))
            continue
        command = command.model_copy(update={"customer_id": row_identity(tenant_id, command)})
        batch.append(
            Candidate(row, command, customer_list.identities_of(command.email, command.phone))
        )
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
    async with contacts.engine.begin() as conn:
        if resume is not None and await _recorded(conn, report.import_id):
            return report  # stopped between recording the run and saying it was done
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
    return report


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
