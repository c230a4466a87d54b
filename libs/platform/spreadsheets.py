"""Text of the CSV files people export from spreadsheets and ERPs.

Excel on a Chinese Windows saves GBK; elsewhere UTF-8 (often with a BOM) or UTF-16.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterator
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from libs.platform.errors import Unprocessable


def decode_spreadsheet(content: bytes) -> str:
    """The file's text: UTF-8 with or without BOM, UTF-16 with BOM, else GBK (read as
    GB18030, its superset); a 422 on ``file`` for anything else."""
    if content.startswith(codecs.BOM_UTF8):
        encodings = ["utf-8-sig"]
    elif content.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encodings = ["utf-16"]
    else:
        encodings = ["utf-8", "gb18030"]
    for encoding in encodings:
        try:
            return content.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise Unprocessable("file", "is neither UTF-8 nor GBK text")


def csv_records(text: str) -> Iterator[list[str] | csv.Error]:
    """The file's records in order; a record the reader cannot parse is its error, in
    its place, so an import can refuse that row and go on."""
    # newline="": a lone carriage return ends a record, as in files from old Mac Excel.
    reader = csv.reader(io.StringIO(text, newline=""))
    while True:
        try:
            yield next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield exc


def import_zone(name: str) -> ZoneInfo:
    """The time zone an import reads local times in; a 422 on ``timezone``."""
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a name too long to look up
        raise Unprocessable("timezone", "is not an IANA time zone such as Asia/Shanghai") from None
