"""CSV import of historic orders: every good row in, every bad row reported, nothing twice.

* Columns (header names, any order, case-insensitive): ``customer_id``, ``currency``,
  ``placed_at``, ``external_id``, ``total``, ``shipping``, ``discount`` (the total, when
  given, must be the lines plus shipping less the discount), and for a line ``sku``, ``name``,
  ``quantity``, ``unit_price``. Rows sharing an ``external_id`` are the lines of one
  order; a row without one is an order of its own.
* Amounts are minor units, or with ``amounts=decimal`` decimals in the currency's
  major unit ("12.50"), converted exactly (more digits than the currency has is an
  error, never rounding). A ``placed_at`` without a zone is read in ``timezone``.
* Each order becomes the ``PlaceOrder`` command the API takes, decided by the same
  domain, for a customer the tenant has; a refused order is reported by its row
  (the header is row 1) and field, and the others go on.
* Re-runs: an order without an external id gets one derived from the tenant and its
  rows, so importing the same file again finds every order already there.
* Orders are written ``batch_size`` at a time, each batch one transaction of a few
  bulk statements.
"""

from __future__ import annotations

import csv
import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import ValidationError
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from libs.events.store import StreamAppend
from libs.events.write_path import new_events
from libs.platform.errors import DomainError, Unprocessable
from libs.platform.spreadsheets import csv_records, decode_spreadsheet, import_zone
from services.pipeline.commands import PlaceOrder
from services.pipeline.domain import orders
from services.pipeline.domain.money import currency_code, minor_units
from services.pipeline.handlers import Pipeline
from services.pipeline.handlers.orders import place_order
from services.pipeline.read_model import order_list

ORDER_COLUMNS = (
    "customer_id",
    "currency",
    "placed_at",
    "external_id",
    "total",
    "shipping",
    "discount",
)
# The order's amounts, told on its first row (and the same on its other rows).
ORDER_AMOUNTS = ("total", "shipping", "discount")
LINE_COLUMNS = ("sku", "name", "quantity", "unit_price")
Amounts = Literal["minor", "decimal"]


@dataclass
class ImportReport:
    rows: int = 0
    orders: int = 0
    created: int = 0
    already_imported: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)

    def refuse(self, row: int, error_field: str, reason: str) -> None:
        self.errors.append({"row": row, "field": error_field, "reason": reason})

    def as_json(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "orders": self.orders,
            "created": self.created,
            "already_imported": self.already_imported,
            "refused": len({e["row"] for e in self.errors}),
            "errors": self.errors,
        }


@dataclass
class _Order:
    first_row: int
    rows: list[tuple[int, dict[str, str]]]


@dataclass
class _Ready:
    row: int
    command: PlaceOrder


def _read(text: str, report: ImportReport) -> list[_Order]:
    records = csv_records(text)
    first = next(records, [])
    if isinstance(first, csv.Error):
        raise Unprocessable("file", f"its header is not CSV: {first}")
    header = [h.strip().lower() for h in first]
    missing = [c for c in ("customer_id", "currency") if c not in header]
    if missing:
        raise Unprocessable("file", f"the header has no column {', '.join(missing)}")
    grouped: dict[str, _Order] = {}
    for number, values in enumerate(records, start=2):
        if isinstance(values, csv.Error):
            report.rows += 1
            report.refuse(number, "row", f"is not CSV: {values}")
            continue
        if not any(v.strip() for v in values):
            continue
        report.rows += 1
        row = {name: values[i].strip() for i, name in enumerate(header) if i < len(values)}
        nul = next((name for name, value in row.items() if "\x00" in value), None)
        if nul is not None:
            # PostgreSQL cannot store it; the rest of the file still goes in.
            report.refuse(number, nul, "contains a NUL character")
            continue
        key = row.get("external_id") or f"row:{number}"
        if key in grouped:
            grouped[key].rows.append((number, row))
        else:
            grouped[key] = _Order(number, [(number, row)])
    return list(grouped.values())


def _amount(raw: str, currency: str, amounts: Amounts) -> int:
    if amounts == "decimal":
        return minor_units(raw, currency)
    if not raw.isdigit():
        raise ValueError(f"{raw!r} is not a whole number of minor units")
    return int(raw)


def _command(
    order: _Order, tenant_id: str, amounts: Amounts, zone: ZoneInfo
) -> tuple[dict[str, Any], int, str]:
    """The PlaceOrder data of a group of rows, or ValueError naming (row, field)."""
    first_row, first = order.rows[0]
    currency = currency_code(first.get("currency", ""))
    data: dict[str, Any] = {
        "customer_id": first.get("customer_id", ""),
        "currency": currency,
        "external_id": first.get("external_id") or None,
    }
    if first.get("placed_at"):
        try:
            placed_at = datetime.fromisoformat(first["placed_at"])
        except ValueError:
            raise _RowError(first_row, "placed_at", "is not an ISO 8601 time") from None
        data["placed_at"] = placed_at if placed_at.tzinfo else placed_at.replace(tzinfo=zone)
    for name in ORDER_AMOUNTS:
        if first.get(name):
            try:
                data[name] = _amount(first[name], currency, amounts)
            except ValueError as exc:
                raise _RowError(first_row, name, str(exc)) from None
    lines = []
    for number, row in order.rows:
        for name in ("customer_id", "currency", "placed_at", *ORDER_AMOUNTS):
            if row.get(name) and row[name] != first.get(name):
                raise _RowError(number, name, "differs from the order's first row")
        if not row.get("sku"):
            continue
        try:
            price = _amount(row.get("unit_price", ""), currency, amounts)
        except ValueError as exc:
            raise _RowError(number, "unit_price", str(exc)) from None
        quantity = row.get("quantity", "1") or "1"
        if not quantity.isdigit():
            raise _RowError(number, "quantity", f"{quantity!r} is not a whole number")
        lines.append(
            {
                "sku": row["sku"],
                "name": row.get("name") or row["sku"],
                "quantity": int(quantity),
                "unit_price": price,
            }
        )
    data["lines"] = lines
    if data["external_id"] is None:
        # Derived from the rows: the same file imported again is the same orders.
        content = repr((tenant_id, [sorted(r.items()) for _, r in order.rows]))
        data["external_id"] = "csv-" + hashlib.sha256(content.encode()).hexdigest()[:40]
    return data, first_row, currency


class _RowError(ValueError):
    def __init__(self, row: int, error_field: str, reason: str) -> None:
        super().__init__(reason)
        self.row = row
        self.field = error_field
        self.reason = reason


async def import_orders(
    pipeline: Pipeline,
    tenant_id: str,
    content: bytes,
    *,
    amounts: Amounts = "minor",
    timezone: str = "UTC",
    bearer: str | None = None,
    batch_size: int = 2000,
) -> ImportReport:
    zone = import_zone(timezone)
    report = ImportReport()
    groups = _read(decode_spreadsheet(content), report)
    report.orders = len(groups)
    commands: list[tuple[int, PlaceOrder]] = []
    for group in groups:
        try:
            data, row, _ = _command(group, tenant_id, amounts, zone)
            commands.append(
                (row, PlaceOrder.model_validate({**data, "order_id": str(uuid.uuid4())}))
            )
        except _RowError as exc:
            report.refuse(exc.row, exc.field, exc.reason)
        except ValidationError as exc:
            error = exc.errors(include_input=False)[0]
            where = ".".join(str(p) for p in error["loc"]) or "row"
            report.refuse(group.first_row, where, error["msg"])
        except ValueError as exc:  # the currency
            report.refuse(group.first_row, "currency", str(exc))
    customers = await _customers(pipeline, tenant_id, [c.customer_id for _, c in commands], bearer)
    ready: list[_Ready] = []
    for row, command in commands:
        customer = customers.get(command.customer_id)
        if customer is None:
            report.refuse(row, "customer_id", f"no customer {command.customer_id} in this tenant")
            continue
        ready.append(_Ready(row, command.model_copy(update={"customer_id": customer})))
    for start in range(0, len(ready), batch_size):
        await _write_batch(pipeline, tenant_id, ready[start : start + batch_size], report, bearer)
    report.errors.sort(key=lambda e: e["row"])
    return report


async def _customers(
    pipeline: Pipeline, tenant_id: str, wanted: Sequence[str], bearer: str | None
) -> dict[str, str]:
    """Each customer id of the file as the tenant knows it: the known ones in one query
    per thousand, the others asked one by one (a customer registered a moment ago)."""
    distinct = list(dict.fromkeys(wanted))
    async with pipeline.engine.connect() as conn:
        found = await pipeline.directory.customers.resolve_many(conn, tenant_id, distinct)
    for customer_id in distinct:
        if customer_id not in found:
            known = await pipeline.directory.known(tenant_id, customer_id, bearer)
            if known is not None:
                found[customer_id] = known.id
    return found


async def _write_batch(
    pipeline: Pipeline,
    tenant_id: str,
    batch: Sequence[_Ready],
    report: ImportReport,
    bearer: str | None,
) -> None:
    now = pipeline.clock()
    table = order_list.order_external_ids
    already_there: list[_Ready] = []
    already = 0
    try:
        async with pipeline.engine.begin() as conn:
            wanted = [r.command.external_id for r in batch]
            orders_table = order_list.orders
            known = {
                row.external_id: row
                for row in await conn.execute(
                    select(
                        table.c.external_id,
                        orders_table.c.customer_id,
                        orders_table.c.currency,
                        orders_table.c.total,
                        orders_table.c.placed_at,
                        orders_table.c.line_count,
                    )
                    .join(
                        orders_table,
                        (orders_table.c.tenant_id == table.c.tenant_id)
                        & (orders_table.c.order_id == table.c.order_id),
                    )
                    .where(table.c.tenant_id == tenant_id, table.c.external_id.in_(wanted))
                )
            }
            appends: list[StreamAppend] = []
            placed: list[dict[str, Any]] = []
            claims: list[dict[str, Any]] = []
            for item in batch:
                command = item.command
                if command.external_id in known:
                    if _same(known[command.external_id], command):
                        already += 1
                    else:  # decided against its content below, with the reason
                        already_there.append(item)
                    continue
                try:
                    events = orders.decide(None, command, now)
                except DomainError as exc:
                    _refuse(report, item.row, exc)
                    continue
                appends.append(
                    StreamAppend(command.order_id, 0, new_events(events, command.customer_id, now))
                )
                order = orders.fold(events)
                assert order is not None
                placed.append(order_list.order_row(tenant_id, order))
                claims.append(
                    {
                        "tenant_id": tenant_id,
                        "external_id": command.external_id,
                        "order_id": command.order_id,
                    }
                )
            if appends:
                await conn.execute(insert(table), claims)
                await pipeline.store.append_many(tenant_id, appends, conn=conn)
                await conn.execute(insert(order_list.orders), placed)
    except IntegrityError:
        # A sync placed one of these external ids meanwhile: one by one, each decided
        # against what is there now.
        for item in batch:
            await _place_one(pipeline, tenant_id, item, report, bearer)
        return
    pipeline.appended(len(appends))
    report.created += len(appends)
    report.already_imported += already
    # The same order again is "already imported"; other content under its external id
    # is the conflict the API answers 409 for: one by one, through the API's handler.
    for item in already_there:
        await _place_one(pipeline, tenant_id, item, report, bearer)


def _same(row: Any, command: PlaceOrder) -> bool:
    """Whether the order already placed under the external id is this one (what the
    read model holds of it; anything less certain goes through the API's handler)."""
    try:
        total = orders.order_total(command)
    except DomainError:  # refused with its reason by the API's handler
        return False
    return bool(
        row.customer_id == command.customer_id
        and row.currency == command.currency
        and int(row.total) == total
        and int(row.line_count) == len(command.lines)
        and (command.placed_at is None or row.placed_at == command.placed_at)
    )


def _refuse(report: ImportReport, row: int, exc: DomainError) -> None:
    issue = exc.body().get("errors")
    if isinstance(issue, list):
        report.refuse(row, issue[0]["field"], issue[0]["reason"])
    else:
        report.refuse(row, str(exc.extra.get("field", "row")), exc.detail)


async def _place_one(
    pipeline: Pipeline, tenant_id: str, item: _Ready, report: ImportReport, bearer: str | None
) -> None:
    try:
        written = await place_order(pipeline, tenant_id, item.command, bearer=bearer)
    except DomainError as exc:
        _refuse(report, item.row, exc)
        return
    if written.created:
        report.created += 1
    else:
        report.already_imported += 1
