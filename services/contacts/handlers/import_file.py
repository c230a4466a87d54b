"""The file of an import: its encoding and header, the columns the caller's mapping
(or the header itself) gives each platform field, and the rows it holds. Checked when
the import is submitted, so that a file that cannot be imported is a 422, not a job."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Sequence

from libs.platform.errors import Unprocessable
from libs.platform.spreadsheets import csv_records, decode_spreadsheet, import_zone

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
        if target not in FIELDS and not is_attribute(target):
            raise Unprocessable(f"mapping.{target}", "is not a field customers can be imported to")
        if column.strip() not in columns:
            raise Unprocessable(f"mapping.{target}", f"column {column!r} is not in the file")
        mapping[target] = columns[column.strip()]
    # Columns already named like a field need no mapping.
    for name, index in columns.items():
        if name in FIELDS or is_attribute(name):
            mapping.setdefault(name, index)
    if "name" not in mapping:
        raise Unprocessable("mapping.name", "no column gives the customer's name")
    return mapping


def is_attribute(target: str) -> bool:
    return target.startswith(ATTRIBUTE_PREFIX) and len(target) > len(ATTRIBUTE_PREFIX)


def read_header(
    content: bytes, mapping: str | None
) -> tuple[Iterator[tuple[int, list[str] | csv.Error]], dict[str, int]]:
    """The file's records after its header, and the column of each platform field."""
    records = enumerate(csv_records(decode_spreadsheet(content)), start=1)
    header_row = next(records, None)
    if header_row is None or isinstance(header_row[1], csv.Error) or not header_row[1]:
        raise Unprocessable("file", "has no header row")
    header = [name.strip().lstrip("\ufeff") for name in header_row[1]]
    return records, parse_mapping(mapping, header)


def inspect_file(content: bytes, mapping: str | None, timezone: str) -> int:
    """How many rows the import of this file will go through; 422 for what would stop
    it before the first row (encoding, header, mapping, time zone). CPU only."""
    import_zone(timezone)
    records, _ = read_header(content, mapping)
    return sum(1 for _, record in records if counts_as_row(record))


def counts_as_row(record: list[str] | csv.Error) -> bool:
    # Blank lines are spreadsheet padding, not customers; a broken record is a row.
    return isinstance(record, csv.Error) or any(cell.strip() for cell in record)
