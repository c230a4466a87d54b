"""One row of an import as the ``RegisterCustomer`` command the API would take: cells
read the way spreadsheets write them (kinds in Chinese, dates with slashes), the id a
row always gets, and the reasons a refused row is reported with."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from libs.events.catalog.contacts import CustomerKind
from libs.platform.errors import Unprocessable
from services.contacts.commands import RegisterCustomer
from services.contacts.domain import (
    ContactsError,
    CustomerNotFound,
)
from services.contacts.handlers.import_file import ATTRIBUTE_PREFIX, is_attribute

# Fixed forever: ids derived from it must come out the same on every re-run.
IMPORT_NAMESPACE = uuid.UUID("6f1d3c1e-7a51-4c8e-9d0b-2b1e5f0c9a77")


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


_TAG_SEPARATORS = re.compile(r"[;,|；，、]")
_DAY = re.compile(r"(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})")


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
        if is_attribute(target):
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
